import { execFile } from 'node:child_process';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import path from 'node:path';
import { C2DError } from '../../domain/errors';
import type { Logger } from '../../domain/logger';
import { findExecutable } from './host';
import { assertJobId } from '../steps';

/**
 * Outbound network for an algorithm whose datasets all allow it (`allowNetworkAccess`).
 *
 * Each such job gets its own network namespace `c2d-<jobId>` joined to the host by a veth pair
 * (`c2dj<11 hex of the job id>` on the host, `eth0` inside) on a /30 of the pool, with a default
 * route through the host, which forwards and masquerades its traffic. One nftables table
 * (`inet c2d_jobs`, static, matched on the `c2dj*` interface names) makes sure it never reaches:
 * - the host itself: every packet that arrives from a job link for a local address (any address of
 *   the host, services bound to 0.0.0.0 included) is rejected in the input hook;
 * - other jobs: nothing is forwarded from one job link to another, nor initiated towards a job;
 * - the deny list (default: every non-public IPv4 range, NON_PUBLIC_IPV4), the addresses of the
 *   provider's Temporal and chain node (denyList), and anything but IPv4.
 * The algorithm's own `127.0.0.1` is its namespace's loopback, never the host's. The namespace,
 * its links and its address slot are named after the job id, so teardown finds them after a crash.
 */

export interface NetworkSettings {
  /** IPv4 CIDR the per-job /30 links are carved from; host-wide, must not overlap the host's networks */
  pool: string;
  /** IPv4 CIDRs an algorithm never reaches (besides the host and other jobs, always refused) */
  deny: string[];
  /** the provider's own services (Temporal, the chain's RPC): host names or IPs, refused wherever they live, on top of `deny` */
  services?: string[];
}

/**
 * Every IPv4 range that is not the public internet (RFC 6890's special-purpose registry): this
 * network, private (RFC 1918), CGNAT, loopback, link-local (cloud metadata), IETF protocol
 * assignments, the documentation and benchmarking nets, multicast and reserved (broadcast included).
 */
export const NON_PUBLIC_IPV4: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

export const DEFAULT_NETWORK: NetworkSettings = { pool: '10.213.0.0/16', deny: [...NON_PUBLIC_IPV4] };

/** `host:port`, `[v6]:port`, a URL or a bare host → the host. */
function hostOf(service: string): string {
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(service)) return new URL(service).hostname.replace(/^\[|\]$/g, '');
  } catch {
    // not a URL after all
  }
  const m = /^\[([^\]]+)\](:\d+)?$/.exec(service) ?? /^([^:]+)(:\d+)?$/.exec(service);
  return m?.[1] ?? service;
}

/**
 * The deny list a job's firewall gets: `deny`, plus every IPv4 address the provider's own services
 * resolve to now (a /32 each), so an algorithm reaches neither Temporal nor the chain node even where
 * they have public addresses. A name that does not resolve adds nothing (said in the log): the ranges stay.
 */
export async function denyList(settings: NetworkSettings, logger: Logger, lookup = dnsLookup): Promise<string[]> {
  const out = new Set(settings.deny.map((c) => c.trim()).filter(Boolean));
  for (const service of settings.services ?? []) {
    const host = hostOf(service);
    if (IPV4.test(host)) {
      out.add(`${host}/32`);
      continue;
    }
    if (host.includes(':')) continue; // IPv6: every IPv6 packet of a job is refused anyway
    try {
      for (const a of await lookup(host)) out.add(`${a}/32`);
    } catch (err) {
      logger.warn({ host, error: (err as Error).message }, 'a provider service name did not resolve: the algorithm deny list goes without it');
    }
  }
  return [...out];
}

/** The IPv4 name servers of the host's /etc/resolv.conf (bound into the algorithm's sandbox), loopback ones left out (they are the job's own). */
export function hostResolvers(text = readIfExists('/etc/resolv.conf')): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(/^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/gm)) if (m[1] && !m[1].startsWith('127.')) out.add(m[1]);
  return [...out].filter((ip) => IPV4.test(ip) && ip.split('.').every((p) => Number(p) <= 255));
}

function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function dnsLookup(host: string): Promise<string[]> {
  return (await dns.lookup(host, { all: true, family: 4 })).map((a) => a.address);
}

/** Prefix of every host-side job link; the firewall matches on it. Nothing else may use it. */
export const JOB_LINK_PREFIX = 'c2dj';
export const NFT_TABLE = 'c2d_jobs';
/** Host-wide (every provider on the host shares the routing table): claimed /30 slots of the pool. */
export const DEFAULT_SLOTS_DIR = '/run/c2d-net/slots';
const STALE_SLOT_MS = 60_000;

export interface JobNetworkNames {
  netns: string;
  /** bind-mounted by `ip netns add`; what the step's wrapper enters */
  netnsPath: string;
  hostLink: string;
  jobLink: string;
}

export function jobNetworkNames(jobId: string): JobNetworkNames {
  assertJobId(jobId);
  const netns = `c2d-${jobId}`;
  // IFNAMSIZ: 15 characters at most
  return { netns, netnsPath: `/run/netns/${netns}`, hostLink: `${JOB_LINK_PREFIX}${jobId.slice(0, 11)}`, jobLink: 'eth0' };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function ipToInt(ip: string): number {
  const m = IPV4.exec(ip);
  if (!m) throw new Error(`not an IPv4 address: ${ip}`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** `a.b.c.d/n` → its network address and prefix length; throws with a message on anything else. */
export function parseCidr(cidr: string): { base: number; bits: number } {
  const [ip, len, extra] = cidr.trim().split('/');
  const bits = Number(len);
  if (extra !== undefined || ip === undefined || !/^\d{1,2}$/.test(len ?? '') || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const addr = ipToInt(ip);
  const size = 2 ** (32 - bits);
  return { base: addr - (addr % size), bits };
}

/** How many /30 job links the pool holds. */
export function slotCount(pool: string): number {
  const { bits } = parseCidr(pool);
  if (bits > 30) throw new Error(`the job network pool ${pool} is smaller than one /30`);
  return 2 ** (30 - bits);
}

/** The host and job addresses of slot `n` of the pool (each a /30). */
export function slotLink(pool: string, slot: number): { host: string; job: string; prefix: 30 } {
  const count = slotCount(pool);
  if (!Number.isInteger(slot) || slot < 0 || slot >= count) throw new Error(`slot ${slot} is outside the pool ${pool}`);
  const net = parseCidr(pool).base + slot * 4;
  return { host: intToIp(net + 1), job: intToIp(net + 2), prefix: 30 };
}

/** Where a job starts looking for a free slot (spreads jobs, so claims rarely collide). */
export const preferredSlot = (jobId: string, count: number): number => parseInt(jobId.slice(0, 8), 16) % count;

/**
 * The nftables ruleset, as one atomic `nft -f` transaction that replaces the table (declare, delete,
 * define): static, so every job and every provider on the host may apply it again.
 */
export function nftRuleset(deny: string[], resolvers: string[] = []): string {
  const jobs = `"${JOB_LINK_PREFIX}*"`;
  // a TCP reset fails a connect at once (an ICMP error only makes TCP retry until its timeout)
  const refuse = (match: string): string[] => [`    ${match} meta l4proto tcp reject with tcp reset`, `    ${match} reject with icmpx type admin-prohibited`];
  const cidrs = deny.map((c) => {
    const { base, bits } = parseCidr(c);
    return `${intToIp(base)}/${bits}`;
  });
  return [
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    // the host itself, on any of its addresses and ports
    `  chain input { type filter hook input priority filter - 10; policy accept;`,
    ...refuse(`iifname ${jobs}`),
    `  }`,
    `  chain forward { type filter hook forward priority filter - 10; policy accept;`,
    ...refuse(`iifname ${jobs} oifname ${jobs}`),
    `    oifname ${jobs} ct state established,related accept`,
    `    oifname ${jobs} drop`,
    ...refuse(`iifname ${jobs} meta nfproto != ipv4`),
    // the host's name servers answer DNS (port 53 only), even on a private address the deny list refuses
    ...(resolvers.length > 0 ? [`    iifname ${jobs} ip daddr { ${resolvers.join(', ')} } th dport 53 accept`] : []),
    ...(cidrs.length > 0 ? refuse(`iifname ${jobs} ip daddr { ${cidrs.join(', ')} }`) : []),
    `  }`,
    `  chain postrouting { type nat hook postrouting priority srcnat; policy accept;`,
    `    iifname ${jobs} oifname != ${jobs} masquerade`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/**
 * `ip` invocations (argv without `ip`) that build a job's namespace and link. Pure: table-tested.
 * `attachPid`: the namespace is the one that process is in (a container's), named rather than created.
 */
export function setupCommands(n: JobNetworkNames, link: { host: string; job: string; prefix: number }, attachPid?: number): string[][] {
  return [
    attachPid === undefined ? ['netns', 'add', n.netns] : ['netns', 'attach', n.netns, String(attachPid)],
    ['link', 'add', n.hostLink, 'type', 'veth', 'peer', 'name', n.jobLink, 'netns', n.netns],
    ['addr', 'add', `${link.host}/${link.prefix}`, 'dev', n.hostLink],
    ['link', 'set', n.hostLink, 'up'],
    ['-n', n.netns, 'addr', 'add', `${link.job}/${link.prefix}`, 'dev', n.jobLink],
    ['-n', n.netns, 'link', 'set', 'lo', 'up'],
    ['-n', n.netns, 'link', 'set', n.jobLink, 'up'],
    ['-n', n.netns, 'route', 'add', 'default', 'via', link.host],
  ];
}

/** `ip` invocations that remove them; each may fail when already gone. Deleting the host link removes the pair at once. */
export function teardownCommands(n: JobNetworkNames): string[][] {
  return [
    ['link', 'del', n.hostLink],
    ['netns', 'del', n.netns],
  ];
}

/** Why this host cannot give algorithms a network, or null when it can. */
export function networkProblem(isRoot: boolean, bins: { ip: string | null; nft: string | null; nsenter: string | null }): string | null {
  if (!isRoot)
    return 'the worker does not run as root: giving an algorithm network access needs CAP_NET_ADMIN (a network namespace, a veth pair and nftables rules per job)';
  if (!bins.ip) return 'ip is not installed (Debian/Ubuntu: apt-get install iproute2)';
  if (!bins.nft) return 'nft is not installed (Debian/Ubuntu: apt-get install nftables, or npm run setup as root)';
  if (!bins.nsenter) return 'nsenter is not installed (Debian/Ubuntu: apt-get install util-linux)';
  return null;
}

function run(file: string, args: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function networkError(message: string, cause?: unknown): C2DError {
  // permanent: retrying on this host cannot give the algorithm a network
  return new C2DError('conflict', 'network_unavailable', `this provider cannot give the algorithm network access: ${message}`, undefined, { cause });
}

export interface JobNetworksOptions {
  settings: NetworkSettings;
  logger: Logger;
  slotsDir?: string;
  isRoot?: boolean;
}

/** Creates and removes per-job network namespaces (see the file comment). */
export class JobNetworks {
  readonly problem: string | null;
  readonly nsenter: string;
  private readonly ip: string;
  private readonly nft: string;
  private readonly slotsDir: string;

  constructor(private readonly opts: JobNetworksOptions) {
    const bins = { ip: findExecutable('ip'), nft: findExecutable('nft'), nsenter: findExecutable('nsenter') };
    this.problem = networkProblem(opts.isRoot ?? process.getuid?.() === 0, bins);
    this.ip = bins.ip ?? 'ip';
    this.nft = bins.nft ?? 'nft';
    this.nsenter = bins.nsenter ?? 'nsenter';
    this.slotsDir = opts.slotsDir ?? DEFAULT_SLOTS_DIR;
    slotCount(opts.settings.pool); // fails early on a bad pool
    nftRuleset(opts.settings.deny);
  }

  /**
   * Builds the job's namespace (replacing leftovers of an earlier attempt) and returns it. `attachPid`:
   * the job's link goes into the namespace of that process (the docker backend's container holding the
   * job's network) instead of a new one; teardown then only unnames it (it ends with its container).
   */
  async setup(jobId: string, o: { attachPid?: number } = {}): Promise<JobNetworkNames> {
    if (this.problem) throw networkError(this.problem);
    const names = jobNetworkNames(jobId);
    await this.teardown(jobId, { keepSlot: true });
    try {
      await run(this.nft, ['-f', '-'], nftRuleset(await denyList(this.opts.settings, this.opts.logger), hostResolvers()));
      enableForwarding(this.opts.logger);
      const link = slotLink(this.opts.settings.pool, this.claimSlot(jobId));
      const cmds = setupCommands(names, link, o.attachPid);
      for (const [i, args] of cmds.entries()) {
        await run(this.ip, args);
        if (i === 1) {
          // no IPv6 on the job link (the firewall refuses it too)
          writeIfExists(`/proc/sys/net/ipv6/conf/${names.hostLink}/disable_ipv6`, '1');
          await run(this.ip, ['netns', 'exec', names.netns, '/bin/sh', '-c', 'f=/proc/sys/net/ipv6/conf/all/disable_ipv6; [ ! -e $f ] || echo 1 > $f']);
        }
      }
      this.opts.logger.info({ jobId, netns: names.netns, link: names.hostLink, address: link.job }, 'job network ready');
      return names;
    } catch (err) {
      await this.teardown(jobId);
      throw err instanceof C2DError ? err : networkError((err as Error).message, err);
    }
  }

  /** Removes the job's namespace, link and slot. Idempotent; never throws for what is already gone. */
  async teardown(jobId: string, o: { keepSlot?: boolean } = {}): Promise<void> {
    if (this.problem) return;
    const names = jobNetworkNames(jobId);
    let removed = false;
    for (const args of teardownCommands(names)) {
      const exists = args[0] === 'netns' ? fs.existsSync(names.netnsPath) : fs.existsSync(`/sys/class/net/${names.hostLink}`);
      if (!exists) continue;
      try {
        await run(this.ip, args);
        removed = true;
      } catch (err) {
        this.opts.logger.warn({ jobId, err: (err as Error).message }, 'could not remove the job network');
      }
    }
    if (!o.keepSlot) this.releaseSlot(jobId);
    if (removed) this.opts.logger.info({ jobId, netns: names.netns }, 'job network removed');
  }

  private claimSlot(jobId: string): number {
    fs.mkdirSync(this.slotsDir, { recursive: true, mode: 0o700 });
    const count = slotCount(this.opts.settings.pool);
    const start = preferredSlot(jobId, count);
    for (let i = 0; i < count; i++) {
      const slot = (start + i) % count;
      const file = path.join(this.slotsDir, String(slot));
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          fs.writeFileSync(file, jobId, { flag: 'wx', mode: 0o600 });
          return slot;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const owner = readSlot(file);
        if (owner === jobId) return slot;
        if (!this.isStale(file, owner)) break;
        fs.rmSync(file, { force: true }); // a job that crashed before tearing down, long gone
      }
    }
    throw networkError(`every address of the pool ${this.opts.settings.pool} is in use`);
  }

  private isStale(file: string, owner: string | null): boolean {
    try {
      if (Date.now() - fs.statSync(file).mtimeMs < STALE_SLOT_MS) return false;
    } catch {
      return true;
    }
    return owner === null || !/^[0-9a-f]{32}$/.test(owner) || !fs.existsSync(jobNetworkNames(owner).netnsPath);
  }

  private releaseSlot(jobId: string): void {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.slotsDir);
    } catch {
      return;
    }
    for (const e of entries) {
      const file = path.join(this.slotsDir, e);
      if (readSlot(file) === jobId) fs.rmSync(file, { force: true });
    }
  }
}

function readSlot(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function writeIfExists(file: string, value: string): void {
  if (fs.existsSync(file)) fs.writeFileSync(file, value);
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** The host must forward the jobs' packets; enabled once, logged (it is a host-wide setting). */
function enableForwarding(logger: Logger): void {
  if (fs.readFileSync(IP_FORWARD, 'utf8').trim() === '1') return;
  fs.writeFileSync(IP_FORWARD, '1');
  logger.warn({}, 'enabled IPv4 forwarding on the host (net.ipv4.ip_forward=1) for algorithms with network access');
}
