import { C2DError } from '../../src/domain/errors';
import { silentLogger } from '../helpers/process-backend';
import {
  DEFAULT_NETWORK,
  JobNetworks,
  jobNetworkNames,
  networkProblem,
  nftRuleset,
  parseCidr,
  preferredSlot,
  setupCommands,
  slotCount,
  slotLink,
  teardownCommands,
} from '../../src/compute/process/network';

const JOB = '0123456789abcdef0123456789abcdef';

describe('job network names', () => {
  test('when named from a job id, then the names are deterministic, fit IFNAMSIZ and carry the firewall prefix', () => {
    const n = jobNetworkNames(JOB);
    expect(n).toEqual({ netns: `c2d-${JOB}`, netnsPath: `/run/netns/c2d-${JOB}`, hostLink: 'c2dj0123456789a', jobLink: 'eth0' });
    expect(n.hostLink.length).toBeLessThanOrEqual(15);
    expect(jobNetworkNames(JOB)).toEqual(n);
  });

  test.each([['../etc'], ['ABCDEF0123456789ABCDEF0123456789'], ['abc'], [`${JOB} x`]])('when the job id is %j, then no name is made from it', (id) => {
    expect(() => jobNetworkNames(id)).toThrow();
  });
});

describe('address pool', () => {
  test.each([
    ['10.213.0.0/16', { base: 10 * 2 ** 24 + 213 * 2 ** 16, bits: 16 }],
    ['10.213.7.9/16', { base: 10 * 2 ** 24 + 213 * 2 ** 16, bits: 16 }],
    ['0.0.0.0/0', { base: 0, bits: 0 }],
  ])('when parsing %s, then it gives the network and prefix', (cidr, want) => {
    expect(parseCidr(cidr)).toEqual(want);
  });

  test.each([['10.0.0.0'], ['10.0.0.256/8'], ['10.0.0.0/33'], ['10.0.0/8'], ['fd00::/8'], ['10.0.0.0/8/1'], ['']])(
    'when parsing %j, then it is refused',
    (cidr) => {
      expect(() => parseCidr(cidr)).toThrow(/IPv4/);
    },
  );

  test.each([
    ['10.213.0.0/16', 0, { host: '10.213.0.1', job: '10.213.0.2', prefix: 30 }],
    ['10.213.0.0/16', 1, { host: '10.213.0.5', job: '10.213.0.6', prefix: 30 }],
    ['10.213.0.0/16', 16383, { host: '10.213.255.253', job: '10.213.255.254', prefix: 30 }],
    ['192.168.4.0/30', 0, { host: '192.168.4.1', job: '192.168.4.2', prefix: 30 }],
  ])('when taking slot %s/%i, then the link is its /30', (pool, slot, want) => {
    expect(slotLink(pool, slot)).toEqual(want);
  });

  test('when a slot is outside the pool or the pool is too small, then it is refused', () => {
    expect(slotCount('10.213.0.0/16')).toBe(16384);
    expect(() => slotLink('10.213.0.0/16', 16384)).toThrow(/outside/);
    expect(() => slotLink('10.213.0.0/16', -1)).toThrow(/outside/);
    expect(() => slotCount('10.0.0.0/31')).toThrow(/smaller than one \/30/);
  });

  test('when two jobs look for a slot, then each starts within the pool', () => {
    expect(preferredSlot(JOB, 16384)).toBe(0x01234567 % 16384);
    expect(preferredSlot('ffffffff' + JOB.slice(8), 7)).toBeLessThan(7);
  });
});

describe('nftRuleset', () => {
  const rules = nftRuleset(DEFAULT_NETWORK.deny);
  const lines = rules.split('\n').map((l) => l.trim());

  test('when applied, then it replaces the whole table in one transaction', () => {
    expect(lines.slice(0, 3)).toEqual(['table inet c2d_jobs', 'delete table inet c2d_jobs', 'table inet c2d_jobs {']);
  });

  test('when a job link sends to any address of the host, then the input hook refuses it (0.0.0.0-bound services included)', () => {
    expect(rules).toMatch(
      /chain input \{ type filter hook input priority filter - 10; policy accept;\n\s+iifname "c2dj\*" meta l4proto tcp reject with tcp reset\n\s+iifname "c2dj\*" reject with icmpx type admin-prohibited\n\s+\}/,
    );
  });

  test('when forwarding, then job-to-job, inbound connections, non-IPv4 and the deny list are refused, and only job traffic is masqueraded', () => {
    const forward = rules.slice(rules.indexOf('chain forward'), rules.indexOf('chain postrouting'));
    const order = [
      'iifname "c2dj*" oifname "c2dj*" meta l4proto tcp reject with tcp reset',
      'iifname "c2dj*" oifname "c2dj*" reject with icmpx',
      'oifname "c2dj*" ct state established,related accept',
      'oifname "c2dj*" drop',
      'iifname "c2dj*" meta nfproto != ipv4 meta l4proto tcp reject',
      'iifname "c2dj*" meta nfproto != ipv4 reject with icmpx',
      `iifname "c2dj*" ip daddr { ${DEFAULT_NETWORK.deny.join(', ')} } meta l4proto tcp reject`,
      `iifname "c2dj*" ip daddr { ${DEFAULT_NETWORK.deny.join(', ')} } reject with icmpx`,
    ].map((r) => forward.indexOf(r));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(rules).toContain('iifname "c2dj*" oifname != "c2dj*" masquerade');
  });

  test('when the deny list is empty or not normalized, then the rules still parse: no empty set, networks normalized', () => {
    expect(nftRuleset([])).not.toContain('ip daddr');
    expect(nftRuleset(['10.1.2.3/8', '192.168.0.0/16'])).toContain('ip daddr { 10.0.0.0/8, 192.168.0.0/16 }');
    expect(() => nftRuleset(['10.0.0.0/8; flush ruleset'])).toThrow(/IPv4/);
  });
});

describe('ip commands', () => {
  const n = jobNetworkNames(JOB);

  test('when setting up, then the namespace gets the job end of the veth, its address, lo and a default route through the host end', () => {
    expect(setupCommands(n, { host: '10.213.0.1', job: '10.213.0.2', prefix: 30 })).toEqual([
      ['netns', 'add', `c2d-${JOB}`],
      ['link', 'add', 'c2dj0123456789a', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `c2d-${JOB}`],
      ['addr', 'add', '10.213.0.1/30', 'dev', 'c2dj0123456789a'],
      ['link', 'set', 'c2dj0123456789a', 'up'],
      ['-n', `c2d-${JOB}`, 'addr', 'add', '10.213.0.2/30', 'dev', 'eth0'],
      ['-n', `c2d-${JOB}`, 'link', 'set', 'lo', 'up'],
      ['-n', `c2d-${JOB}`, 'link', 'set', 'eth0', 'up'],
      ['-n', `c2d-${JOB}`, 'route', 'add', 'default', 'via', '10.213.0.1'],
    ]);
  });

  test("when a container's namespace is to be used (the docker backend's holder), then it is named after the job instead of created, the rest alike", () => {
    const attached = setupCommands(n, { host: '10.213.0.1', job: '10.213.0.2', prefix: 30 }, 4242);
    expect(attached[0]).toEqual(['netns', 'attach', `c2d-${JOB}`, '4242']);
    expect(attached.slice(1)).toEqual(setupCommands(n, { host: '10.213.0.1', job: '10.213.0.2', prefix: 30 }).slice(1));
  });

  test('when tearing down, then the host link goes first (removing the pair at once), then the namespace', () => {
    expect(teardownCommands(n)).toEqual([
      ['link', 'del', 'c2dj0123456789a'],
      ['netns', 'del', `c2d-${JOB}`],
    ]);
  });
});

describe('networkProblem', () => {
  const all = { ip: '/usr/sbin/ip', nft: '/usr/sbin/nft', nsenter: '/usr/bin/nsenter' };
  test.each([
    ['root with every tool', true, all, null],
    ['not root', false, all, /not run as root.*CAP_NET_ADMIN/],
    ['no ip', true, { ...all, ip: null }, /iproute2/],
    ['no nft', true, { ...all, nft: null }, /nftables/],
    ['no nsenter', true, { ...all, nsenter: null }, /util-linux/],
  ])('when %s, then the problem is %p', (_name, root, bins, want) => {
    const got = networkProblem(root, bins);
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatch(want);
  });
});

describe('JobNetworks without root', () => {
  test('when a job needs network and the worker is not root, then setup fails permanently with a message that says why, and teardown is a no-op', async () => {
    const nets = new JobNetworks({ settings: DEFAULT_NETWORK, logger: silentLogger, isRoot: false, slotsDir: '/nonexistent/slots' });
    const err = await nets.setup(JOB).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(C2DError);
    expect(err).toMatchObject({
      kind: 'conflict',
      code: 'network_unavailable',
      message: expect.stringMatching(/cannot give the algorithm network access: the worker does not run as root/),
    });
    await expect(nets.teardown(JOB)).resolves.toBeUndefined();
  });

  test('when the pool or the deny list is malformed, then the backend refuses to start', () => {
    expect(() => new JobNetworks({ settings: { pool: '10.0.0.0/31', deny: [] }, logger: silentLogger, isRoot: false })).toThrow(/smaller than one \/30/);
    expect(() => new JobNetworks({ settings: { pool: '10.0.0.0/16', deny: ['nope'] }, logger: silentLogger, isRoot: false })).toThrow(/IPv4/);
  });
});
