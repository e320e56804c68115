/**
 * The one way the provider and its steps fetch a URL that an asset, a consumer or a remote DDO chose:
 * dataset and algorithm files, a raw algorithm's `meta.url`, a remote provider's `serviceEndpoint`,
 * the webhook. It resolves the name, refuses addresses that are not public (loopback, private, link-local
 * and cloud metadata, CGNAT, unique-local, multicast, reserved, and IPv6 forms that embed one of those),
 * connects to exactly the address it checked (no DNS rebinding between check and connect), checks every
 * redirect again, drops credentials when a redirect leaves the origin, refuses https → http, and sends
 * only GET/HEAD with a small header allow-list. Operators allow exceptions with C2D_ALLOWED_PRIVATE_HOSTS.
 *
 * Node built-ins only, and nothing else of ours: the configure step runs this file in its sandbox,
 * next to its own program (see src/compute/process/steps.ts and pod-images/configure).
 */
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';

/**
 * A request the guard refuses. The message names the rule (an address class, a redirect rule, a
 * method or header), never the URL, the host name or the address: it reaches consumers and job logs.
 */
export class RefusedRequestError extends Error {
  constructor(readonly rule: string) {
    super(rule);
    this.name = 'RefusedRequestError';
  }
}

/** The address a URL names, or one its name resolves to, is not public and not allowed. */
export class AddressRefusedError extends RefusedRequestError {
  constructor(readonly addressClass: string) {
    super(`refused: ${addressClass} (allow it in ${ALLOWED_PRIVATE_HOSTS_SETTING})`);
    this.name = 'AddressRefusedError';
  }
}

/** C2D_ALLOWED_PRIVATE_HOSTS holds an entry that is not a host name, IP, CIDR, host:port or ip:port. */
export class AllowListError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AllowListError';
  }
}

export const ALLOWED_PRIVATE_HOSTS_SETTING = 'C2D_ALLOWED_PRIVATE_HOSTS';
export const MAX_REDIRECTS = 5;
/** methods a file may name (upper-cased); anything else is refused */
export const FILE_METHODS: readonly string[] = ['GET', 'HEAD'];
/** request headers a file may set; anything else is refused (Host, Cookie, X-Forwarded-For, … could steer a server) */
export const FILE_HEADERS: readonly string[] = ['accept', 'accept-language', 'authorization', 'user-agent', 'x-api-key'];
/** headers that carry credentials: dropped when a redirect leaves the origin */
const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'cookie', 'proxy-authorization'];

// ---------------------------------------------------------------------------------------------
// Addresses

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function v4ToInt(ip: string): number {
  const m = V4.exec(ip);
  const parts = m ? m.slice(1).map(Number) : [];
  if (parts.length !== 4 || parts.some((p) => p > 255)) throw new Error('not an IPv4 address');
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

/** A valid IPv6 literal (net.isIP said so, zone id removed) as a 128-bit number. */
function v6ToBigInt(ip: string): bigint {
  let s = ip;
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
  if (dotted) {
    const v4 = v4ToInt(dotted[2] ?? '');
    s = `${dotted[1]}${Math.floor(v4 / 65536).toString(16)}:${(v4 % 65536).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined ? [] : tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** One address as numbers: `v4` is set for IPv4 and for the IPv4-mapped IPv6 form (::ffff:a.b.c.d). */
interface Addr {
  family: 4 | 6;
  v4?: number;
  v6?: bigint;
}

function toAddr(ip: string): Addr | null {
  const bare = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = net.isIP(bare);
  if (family === 4) return { family: 4, v4: v4ToInt(bare) };
  if (family !== 6) return null;
  const v6 = v6ToBigInt(bare);
  return v6 >> 32n === 0xffffn ? { family: 6, v6, v4: Number(v6 & 0xffffffffn) } : { family: 6, v6 };
}

type V4Rule = [base: string, bits: number, rule: string];
type V6Rule = [base: string, bits: number, rule: string];

const LOOPBACK = 'loopback address';
const PRIVATE = 'private address (RFC 1918)';
const LINK_LOCAL = 'link-local address (cloud metadata)';
const UNSPECIFIED = 'unspecified address';
const RESERVED = 'reserved address';

/** IPv4 ranges that are not public, most specific first. */
const V4_RULES: V4Rule[] = [
  ['255.255.255.255', 32, 'broadcast address'],
  ['0.0.0.0', 8, UNSPECIFIED],
  ['10.0.0.0', 8, PRIVATE],
  ['100.64.0.0', 10, 'shared address (carrier-grade NAT)'],
  ['127.0.0.0', 8, LOOPBACK],
  ['169.254.0.0', 16, LINK_LOCAL],
  ['172.16.0.0', 12, PRIVATE],
  ['192.0.0.0', 24, RESERVED],
  ['192.0.2.0', 24, RESERVED],
  ['192.88.99.0', 24, RESERVED],
  ['192.168.0.0', 16, PRIVATE],
  ['198.18.0.0', 15, RESERVED],
  ['198.51.100.0', 24, RESERVED],
  ['203.0.113.0', 24, RESERVED],
  ['224.0.0.0', 4, 'multicast address'],
  ['240.0.0.0', 4, RESERVED],
];

/** IPv6 ranges that are not public (the forms that embed an IPv4 address are judged by that address). */
const V6_RULES: V6Rule[] = [
  ['::', 128, UNSPECIFIED],
  ['::1', 128, LOOPBACK],
  ['100::', 64, RESERVED],
  ['2001:db8::', 32, RESERVED],
  ['fc00::', 7, 'unique-local address'],
  ['fe80::', 10, 'link-local address'],
  ['fec0::', 10, 'site-local address'],
  ['ff00::', 8, 'multicast address'],
];

const inV4 = (a: number, base: string, bits: number): boolean =>
  bits === 0 || Math.floor(a / 2 ** (32 - bits)) === Math.floor(v4ToInt(base) / 2 ** (32 - bits));
const inV6 = (a: bigint, base: string, bits: number): boolean => a >> BigInt(128 - bits) === v6ToBigInt(base) >> BigInt(128 - bits);

function classifyV4(a: number): string | null {
  for (const [base, bits, rule] of V4_RULES) if (inV4(a, base, bits)) return rule;
  return null;
}

/** The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo), if any. */
function embeddedV4(v6: bigint): number | null {
  const low32 = Number(v6 & 0xffffffffn);
  if (v6 >> 32n === 0xffffn || v6 >> 32n === 0n) return low32; // ::ffff:a.b.c.d, ::a.b.c.d
  if (v6 >> 32n === v6ToBigInt('64:ff9b::') >> 32n) return low32; // NAT64 (RFC 6052)
  if (v6 >> 80n === v6ToBigInt('64:ff9b:1::') >> 80n) return low32; // local-use NAT64 (RFC 8215)
  if (v6 >> 112n === 0x2002n) return Number((v6 >> 80n) & 0xffffffffn); // 6to4
  if (v6 >> 96n === 0x20010000n) return Number(~v6 & 0xffffffffn) >>> 0; // Teredo: the client's address, inverted
  return null;
}

/**
 * Why an address may not be fetched by default, or null when it is public. `ip` is an IPv4 or IPv6
 * literal (brackets and a zone id allowed); anything else is refused as not an address.
 */
export function classifyAddress(ip: string): string | null {
  const a = toAddr(ip);
  if (!a) return 'not an IP address';
  if (a.family === 4) return classifyV4(a.v4 ?? 0);
  const v6 = a.v6 ?? 0n;
  for (const [base, bits, rule] of V6_RULES) if (inV6(v6, base, bits)) return rule;
  const v4 = embeddedV4(v6);
  return v4 === null ? null : classifyV4(v4);
}

// ---------------------------------------------------------------------------------------------
// The operators' exceptions (C2D_ALLOWED_PRIVATE_HOSTS)

/** One exception: a host name (as written in URLs), or an address range; optionally one port only. */
export type AllowEntry = { kind: 'host'; host: string; port?: number } | { kind: 'net'; family: 4 | 6; base: string; bits: number; port?: number };

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/;

function parsePort(raw: string, entry: string): number {
  const port = Number(raw);
  if (!/^\d{1,5}$/.test(raw) || port < 1 || port > 65535)
    throw new AllowListError(`${ALLOWED_PRIVATE_HOSTS_SETTING}: "${entry}" has an invalid port (1-65535)`);
  return port;
}

function parseEntry(entry: string): AllowEntry {
  const bad = (why: string): AllowListError => new AllowListError(`${ALLOWED_PRIVATE_HOSTS_SETTING}: "${entry}" ${why}`);
  if (/[\s/]*:\/\//.test(entry) || /[?#@*]/.test(entry)) throw bad('is not a host name, IP address, CIDR, host:port or ip:port (no scheme, path or wildcard)');
  if (entry.includes('/')) {
    const [ip = '', bitsRaw = '', extra] = entry.split('/');
    const family = net.isIP(ip);
    const bits = Number(bitsRaw);
    if (extra !== undefined || (family !== 4 && family !== 6)) throw bad('is not a CIDR (an IPv4 or IPv6 address / prefix length)');
    if (!/^\d{1,3}$/.test(bitsRaw) || bits > (family === 4 ? 32 : 128)) throw bad(`has an invalid prefix length (0-${family === 4 ? 32 : 128})`);
    return { kind: 'net', family, base: ip, bits };
  }
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    const ip = bracketed[1] ?? '';
    if (net.isIP(ip) !== 6) throw bad('is not an IPv6 address in brackets');
    return { kind: 'net', family: 6, base: ip, bits: 128, ...(bracketed[2] !== undefined ? { port: parsePort(bracketed[2], entry) } : {}) };
  }
  const family = net.isIP(entry);
  if (family === 6) return { kind: 'net', family: 6, base: entry, bits: 128 };
  if (family === 4) return { kind: 'net', family: 4, base: entry, bits: 32 };
  const colon = entry.lastIndexOf(':');
  if (colon !== -1 && entry.indexOf(':') !== colon) throw bad('looks like an IPv6 address but is not one (write [addr]:port for a port)');
  const name = colon === -1 ? entry : entry.slice(0, colon);
  const port = colon === -1 ? undefined : parsePort(entry.slice(colon + 1), entry);
  if (net.isIP(name) === 4) return { kind: 'net', family: 4, base: name, bits: 32, ...(port !== undefined ? { port } : {}) };
  const host = name.toLowerCase().replace(/\.$/, '');
  if (/^[\d.]+$/.test(host) || /^0x/i.test(host)) throw bad('is not a valid IPv4 address (write all four parts in decimal)');
  if (!HOST_NAME.test(host)) throw bad('is not a host name, IP address, CIDR, host:port or ip:port');
  return { kind: 'host', host, ...(port !== undefined ? { port } : {}) };
}

/** Parses C2D_ALLOWED_PRIVATE_HOSTS (comma-separated) or its entries; throws AllowListError naming the bad entry. */
export function parseAllowList(raw: string | readonly string[]): AllowEntry[] {
  const entries = (typeof raw === 'string' ? raw.split(',') : raw).map((e) => e.trim()).filter((e) => e !== '');
  return entries.map(parseEntry);
}

/** parsed lists by their text: a handful per program */
const parsedLists = new Map<string, AllowEntry[]>();

/** What the fetches of one program are allowed besides public addresses: the setting's entries. */
export interface FetchPolicy {
  /** C2D_ALLOWED_PRIVATE_HOSTS, as entries (validated by the settings) */
  allowedPrivateHosts: readonly string[];
}

export const STRICT_POLICY: FetchPolicy = { allowedPrivateHosts: [] };

function entriesOf(policy: FetchPolicy): AllowEntry[] {
  const key = policy.allowedPrivateHosts.join(',');
  let parsed = parsedLists.get(key);
  if (!parsed) {
    parsed = parseAllowList(policy.allowedPrivateHosts);
    parsedLists.set(key, parsed);
  }
  return parsed;
}

function entryMatches(e: AllowEntry, host: string, address: Addr, port: number): boolean {
  if (e.port !== undefined && e.port !== port) return false;
  if (e.kind === 'host') return e.host === host;
  if (e.family === 4) return address.v4 !== undefined && inV4(address.v4, e.base, e.bits);
  return address.v6 !== undefined && (e.bits === 0 || inV6(address.v6, e.base, e.bits));
}

/** Whether the operator allowed fetching `address` (what `host` resolved to, or the literal) on `port`. */
export function isAllowed(policy: FetchPolicy, host: string, address: string, port: number): boolean {
  const a = toAddr(address);
  const name = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  return !!a && entriesOf(policy).some((e) => entryMatches(e, name, a, port));
}

/**
 * Whether an allowed entry points at this host itself (loopback, `localhost`, the unspecified address):
 * such addresses are only reachable from the host's own network namespace.
 */
export function allowsLoopback(entries: readonly string[]): boolean {
  return parseAllowList(entries).some((e) =>
    e.kind === 'host'
      ? e.host === 'localhost' || e.host.endsWith('.localhost')
      : ['127.0.0.1', '::1', '0.0.0.0', '::'].some((ip) => {
          const a = toAddr(ip);
          return !!a && a.family === e.family && entryMatches({ ...e, port: undefined }, '', a, 0);
        }),
  );
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface CheckedAddress {
  address: string;
  family: 4 | 6;
}

const defaultPort = (url: URL): number => (url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80);

function lookupAll(host: string): Promise<CheckedAddress[]> {
  return new Promise((resolve, reject) =>
    dns.lookup(host, { all: true, verbatim: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }))),
    ),
  );
}

/**
 * Resolves the URL's host and checks every address it has (one address that is not allowed refuses the
 * name: a resolver may answer differently next time). Returns the address to connect to. Throws
 * RefusedRequestError, or the resolver's error (its `code`, e.g. ENOTFOUND).
 */
export async function checkUrlAddress(url: URL, policy: FetchPolicy): Promise<CheckedAddress> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RefusedRequestError('unsupported URL scheme (only http and https)');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = defaultPort(url);
  const literal = net.isIP(host);
  const addresses = literal ? [{ address: host, family: literal === 6 ? 6 : 4 } as const] : await lookupAll(host);
  if (addresses.length === 0) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
  for (const a of addresses) {
    const rule = classifyAddress(a.address);
    if (rule !== null && !isAllowed(policy, host, a.address, port)) throw new AddressRefusedError(rule);
  }
  return addresses[0] as CheckedAddress;
}

/** Checks a URL without fetching it (the API does this at job start, so a refused URL is a 4xx). */
export async function checkUrl(raw: string, policy: FetchPolicy): Promise<void> {
  await checkUrlAddress(parseHttpUrl(raw), policy);
}

/** An http(s) URL, or RefusedRequestError naming what is wrong (never the URL). */
export function parseHttpUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RefusedRequestError('invalid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RefusedRequestError('unsupported URL scheme (only http and https)');
  return url;
}

export interface GuardedRequestOptions {
  policy: FetchPolicy;
  /** default GET; must be one of `methods` */
  method?: string;
  /** default GET and HEAD (files); the webhook sends POST */
  methods?: readonly string[];
  /** headers chosen by an asset or a consumer: only FILE_HEADERS, else refused */
  headers?: Record<string, string>;
  /** headers the provider itself sets (the webhook's signature), not checked against the allow-list */
  ownHeaders?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** redirects followed (each checked again); 0: a 3xx is returned as it is. Default MAX_REDIRECTS */
  maxRedirects?: number;
}

function checkedHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (!FILE_HEADERS.includes(lower)) {
      const shown = lower.replace(/[^a-z0-9-]/g, '').slice(0, 40);
      throw new RefusedRequestError(`refused: header "${shown}" is not allowed (allowed: ${FILE_HEADERS.join(', ')})`);
    }
    out[lower] = String(value);
  }
  return out;
}

const sameOrigin = (a: URL, b: URL): boolean => a.protocol === b.protocol && a.hostname === b.hostname && defaultPort(a) === defaultPort(b);

function send(
  url: URL,
  to: CheckedAddress,
  o: { method: string; headers: Record<string, string>; body?: string | Buffer; signal?: AbortSignal },
): Promise<http.IncomingMessage> {
  // connect to the address that was checked, whatever the resolver would answer now
  const lookup = (_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void): void => {
    if (opts?.all) cb(null, [{ address: to.address, family: to.family }]);
    else cb(null, to.address, to.family);
  };
  return new Promise((resolve, reject) => {
    const start = (request: typeof http.request): void => {
      const req = request(url, { method: o.method, headers: o.headers, lookup: lookup as never, ...(o.signal ? { signal: o.signal } : {}) }, resolve);
      req.on('error', reject);
      req.end(o.body);
    };
    // https (and TLS with it) only loaded when a URL needs it: it costs every configure step a few ms otherwise
    if (url.protocol === 'https:') import('node:https').then((https) => start(https.request), reject);
    else start(http.request);
  });
}

/**
 * Sends one request through the guard and follows redirects (each one checked as the first URL).
 * Resolves with the final response, whatever its status; the caller consumes or destroys it. Throws
 * RefusedRequestError for what the guard refuses, else the network error (use its `code` only: its
 * message can name the host).
 */
export async function guardedRequest(raw: string | URL, o: GuardedRequestOptions): Promise<http.IncomingMessage> {
  const methods = o.methods ?? FILE_METHODS;
  let method = (o.method ?? 'GET').toUpperCase();
  if (!methods.includes(method))
    throw new RefusedRequestError(`refused: method ${method.replace(/[^A-Z]/g, '').slice(0, 10)} is not allowed (${methods.join(' or ')} only)`);
  let headers = { ...checkedHeaders(o.headers), ...o.ownHeaders };
  let body = o.body;
  let url = typeof raw === 'string' ? parseHttpUrl(raw) : raw;
  const maxRedirects = o.maxRedirects ?? MAX_REDIRECTS;
  for (let redirects = 0; ; redirects++) {
    const to = await checkUrlAddress(url, o.policy);
    const res = await send(url, to, { method, headers, ...(body !== undefined ? { body } : {}), ...(o.signal ? { signal: o.signal } : {}) });
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (maxRedirects === 0 || status < 300 || status >= 400 || status === 304 || !location) return res;
    res.resume();
    if (redirects >= maxRedirects) throw new RefusedRequestError('too many redirects');
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new RefusedRequestError('invalid redirect');
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RefusedRequestError('unsupported URL scheme (only http and https)');
    if (url.protocol === 'https:' && next.protocol === 'http:') throw new RefusedRequestError('refused: a redirect from https to http');
    if (!sameOrigin(url, next)) {
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k.toLowerCase())));
      next.username = '';
      next.password = '';
    }
    if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
      method = method === 'HEAD' ? 'HEAD' : 'GET';
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !['content-type', 'content-length'].includes(k.toLowerCase())));
    }
    url = next;
  }
}
