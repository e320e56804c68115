import { DEFAULT_NETWORK, denyList, hostResolvers, NON_PUBLIC_IPV4, nftRuleset } from '../../src/compute/process/network';
import { loadConfig } from '../../src/config';
import { recordingLogger } from '../helpers/api';

const lookup = (table: Record<string, string[]>) => (host: string) =>
  table[host] ? Promise.resolve(table[host]) : Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`));

describe('the deny list of algorithms with network access', () => {
  it('when nothing is configured, then every private, CGNAT, loopback, link-local, multicast and reserved range is refused', () => {
    for (const cidr of [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      '127.0.0.0/8',
      '169.254.0.0/16',
      '224.0.0.0/4',
      '240.0.0.0/4',
      '0.0.0.0/8',
    ])
      expect(DEFAULT_NETWORK.deny).toContain(cidr);
    expect(nftRuleset(DEFAULT_NETWORK.deny)).toContain(`ip daddr { ${NON_PUBLIC_IPV4.join(', ')} }`);
  });

  it('when the settings are read, then the default list is the same and the Temporal and chain addresses ride along', () => {
    const config = loadConfig({ C2D_TEMPORAL_ADDRESS: 'temporal.example:7233', C2D_CHAIN_RPC_URL: 'https://rpc.example/v1' });
    expect(config.sandbox.network?.deny).toEqual([...NON_PUBLIC_IPV4]);
    expect(config.sandbox.network?.services).toEqual(['temporal.example:7233', 'https://rpc.example/v1']);
  });

  it('when Temporal and the chain node have public addresses, then those addresses join the deny list', async () => {
    const settings = { ...DEFAULT_NETWORK, services: ['temporal.example:7233', 'https://rpc.example:8545/key', '203.0.114.7:7233', '[2001:db8::1]:7233'] };
    const deny = await denyList(settings, recordingLogger(), lookup({ 'temporal.example': ['52.1.2.3', '52.1.2.4'], 'rpc.example': ['34.5.6.7'] }));
    expect(deny).toEqual([...NON_PUBLIC_IPV4, '52.1.2.3/32', '52.1.2.4/32', '34.5.6.7/32', '203.0.114.7/32']);
    expect(nftRuleset(deny)).toContain('52.1.2.3/32');
  });

  it('when a service name does not resolve, then the ranges stay and the log says so, without failing the job', async () => {
    const logger = recordingLogger();
    const deny = await denyList({ ...DEFAULT_NETWORK, services: ['nowhere.invalid:7233'] }, logger, lookup({}));
    expect(deny).toEqual([...NON_PUBLIC_IPV4]);
    expect(JSON.stringify(logger.entries)).toContain('did not resolve');
  });
});

describe('name servers of algorithms with network access', () => {
  it('when the host resolves through a private name server, then DNS to it is accepted before the deny list, and nothing else to it', () => {
    const resolvers = hostResolvers('# cloud\nnameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver 2001:db8::53\nnameserver 10.0.0.2\n');
    expect(resolvers).toEqual(['10.0.0.2']);
    const rules = nftRuleset(DEFAULT_NETWORK.deny, resolvers);
    const dns = rules.indexOf('iifname "c2dj*" ip daddr { 10.0.0.2 } th dport 53 accept');
    expect(dns).toBeGreaterThan(0);
    expect(dns).toBeLessThan(rules.indexOf('ip daddr { 0.0.0.0/8'));
  });
});
