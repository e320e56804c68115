import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config';
import {
  AddressRefusedError,
  AllowListError,
  allowsLoopback,
  classifyAddress,
  guardedRequest,
  isAllowed,
  parseAllowList,
  RefusedRequestError,
} from '../../src/net/guarded-fetch';

describe('address classification', () => {
  test.each([
    ['127.0.0.1', 'loopback address'],
    ['127.255.1.2', 'loopback address'],
    ['::1', 'loopback address'],
    ['[::1]', 'loopback address'],
    ['10.1.2.3', 'private address (RFC 1918)'],
    ['172.16.0.1', 'private address (RFC 1918)'],
    ['172.31.255.255', 'private address (RFC 1918)'],
    ['192.168.1.1', 'private address (RFC 1918)'],
    ['169.254.169.254', 'link-local address (cloud metadata)'],
    ['fe80::1', 'link-local address'],
    ['fe80::1%eth0', 'link-local address'],
    ['100.64.0.1', 'shared address (carrier-grade NAT)'],
    ['100.127.255.254', 'shared address (carrier-grade NAT)'],
    ['fc00::1', 'unique-local address'],
    ['fd12:3456::1', 'unique-local address'],
    ['224.0.0.1', 'multicast address'],
    ['ff02::1', 'multicast address'],
    ['0.0.0.0', 'unspecified address'],
    ['0.1.2.3', 'unspecified address'],
    ['::', 'unspecified address'],
    ['255.255.255.255', 'broadcast address'],
    ['240.0.0.1', 'reserved address'],
    ['192.0.2.10', 'reserved address'],
    ['2001:db8::1', 'reserved address'],
    // IPv6 forms that carry an IPv4 address are judged by that address
    ['::ffff:127.0.0.1', 'loopback address'],
    ['::ffff:7f00:1', 'loopback address'],
    ['::ffff:169.254.169.254', 'link-local address (cloud metadata)'],
    ['::127.0.0.1', 'loopback address'],
    ['64:ff9b::a00:1', 'private address (RFC 1918)'],
    ['64:ff9b:1::a9fe:a9fe', 'link-local address (cloud metadata)'],
    ['2002:7f00:1::1', 'loopback address'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback address'],
    ['not-an-ip', 'not an IP address'],
  ])('when the address is %s, then it is refused as %s', (ip, rule) => {
    expect(classifyAddress(ip)).toBe(rule);
  });

  test.each(['8.8.8.8', '1.1.1.1', '100.128.0.1', '172.32.0.1', '192.169.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])(
    'when the address is %s, then it is public',
    (ip) => {
      expect(classifyAddress(ip)).toBeNull();
    },
  );
});

describe('C2D_ALLOWED_PRIVATE_HOSTS', () => {
  test('when entries of every kind are given, then each parses', () => {
    expect(parseAllowList(' data.internal, Files.Local.:8080,10.0.0.5,10.0.0.6:9000,10.1.0.0/16,[::1]:3000,fd00::/8,::1 ,')).toEqual([
      { kind: 'host', host: 'data.internal' },
      { kind: 'host', host: 'files.local', port: 8080 },
      { kind: 'net', family: 4, base: '10.0.0.5', bits: 32 },
      { kind: 'net', family: 4, base: '10.0.0.6', bits: 32, port: 9000 },
      { kind: 'net', family: 4, base: '10.1.0.0', bits: 16 },
      { kind: 'net', family: 6, base: '::1', bits: 128, port: 3000 },
      { kind: 'net', family: 6, base: 'fd00::', bits: 8 },
      { kind: 'net', family: 6, base: '::1', bits: 128 },
    ]);
    expect(parseAllowList('')).toEqual([]);
  });

  test.each([
    ['http://data.internal', 'no scheme, path or wildcard'],
    ['*.internal', 'no scheme, path or wildcard'],
    ['data.internal:0', 'invalid port'],
    ['data.internal:99999', 'invalid port'],
    ['data.internal:http', 'invalid port'],
    ['10.0.0.0/33', 'invalid prefix length'],
    ['10.0.0/8', 'is not a CIDR'],
    ['10.0.0.0/8:80', 'invalid prefix length'],
    ['127.1', 'not a valid IPv4 address'],
    ['0x7f.0.0.1', 'not a valid IPv4 address'],
    ['10.0.0.1:80:81', 'looks like an IPv6 address'],
    ['[10.0.0.1]:80', 'not an IPv6 address in brackets'],
    ['bad_host!', 'is not a host name'],
  ])('when an entry is %s, then the setting is refused saying why', (entry, why) => {
    expect(() => parseAllowList(`ok.internal,${entry}`)).toThrow(AllowListError);
    expect(() => parseAllowList(entry)).toThrow(`C2D_ALLOWED_PRIVATE_HOSTS: "${entry}"`);
    expect(() => parseAllowList(entry)).toThrow(why);
  });

  test('when the setting holds a bad entry, then the settings are refused at startup naming the variable and the entry', () => {
    const base = { C2D_PROVIDER_PRIVATE_KEY: '11'.repeat(32), C2D_DATA_DIR: '/nonexistent/c2d-config-test' };
    expect(() => loadConfig({ ...base, C2D_ALLOWED_PRIVATE_HOSTS: 'files.internal,http://10.0.0.1/' })).toThrow(
      'Invalid setting C2D_ALLOWED_PRIVATE_HOSTS: "http://10.0.0.1/" is not a host name, IP address, CIDR, host:port or ip:port (no scheme, path or wildcard)',
    );
    expect(loadConfig({ ...base, C2D_ALLOWED_PRIVATE_HOSTS: ' files.internal , 10.0.0.0/8 ' }).fetch).toEqual({
      allowedPrivateHosts: ['files.internal', '10.0.0.0/8'],
    });
    expect(loadConfig(base).fetch).toEqual({ allowedPrivateHosts: [] });
  });

  test('when an address is checked, then only a matching entry (and port) allows it', () => {
    const policy = { allowedPrivateHosts: ['data.internal', '127.0.0.1:8080', '10.1.0.0/16', '[::1]:3000'] };
    expect(isAllowed(policy, 'data.internal', '10.9.9.9', 1234)).toBe(true);
    expect(isAllowed(policy, 'other.internal', '10.9.9.9', 1234)).toBe(false);
    expect(isAllowed(policy, '127.0.0.1', '127.0.0.1', 8080)).toBe(true);
    expect(isAllowed(policy, '127.0.0.1', '127.0.0.1', 8081)).toBe(false);
    expect(isAllowed(policy, 'x', '::ffff:127.0.0.1', 8080)).toBe(true);
    expect(isAllowed(policy, '10.1.200.3', '10.1.200.3', 80)).toBe(true);
    expect(isAllowed(policy, '10.2.0.1', '10.2.0.1', 80)).toBe(false);
    expect(isAllowed(policy, '[::1]', '::1', 3000)).toBe(true);
    expect(isAllowed(policy, '[::1]', '::1', 3001)).toBe(false);
  });

  test('when an entry points at this host, then allowsLoopback says so', () => {
    expect(allowsLoopback(['127.0.0.1:8080'])).toBe(true);
    expect(allowsLoopback(['localhost'])).toBe(true);
    expect(allowsLoopback(['127.0.0.0/8'])).toBe(true);
    expect(allowsLoopback(['[::1]:80'])).toBe(true);
    expect(allowsLoopback(['10.0.0.0/8', 'data.internal', '192.168.1.2:80'])).toBe(false);
  });
});

describe('guarded requests over http', () => {
  let server: http.Server;
  let other: http.Server;
  let base: string;
  let otherBase: string;
  const hits: { path: string; headers: http.IncomingHttpHeaders }[] = [];
  const otherHits: { path: string; headers: http.IncomingHttpHeaders }[] = [];

  const listen = async (s: http.Server): Promise<string> => {
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };

  beforeAll(async () => {
    other = http.createServer((req, res) => {
      otherHits.push({ path: req.url ?? '', headers: req.headers });
      res.end('other');
    });
    otherBase = await listen(other);
    server = http.createServer((req, res) => {
      hits.push({ path: req.url ?? '', headers: req.headers });
      if (req.url === '/to-other') return void res.writeHead(302, { location: `${otherBase}/x` }).end();
      if (req.url === '/to-self') return void res.writeHead(302, { location: '/ok' }).end();
      if (req.url === '/to-metadata') return void res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      if (req.url === '/to-mapped') return void res.writeHead(302, { location: `http://[::ffff:127.0.0.1]:${new URL(otherBase).port}/x` }).end();
      res.end('ok');
    });
    base = await listen(server);
  });

  afterAll(() => {
    for (const s of [server, other]) {
      s.closeAllConnections();
      s.close();
    }
  });

  const body = async (res: http.IncomingMessage): Promise<string> => {
    let text = '';
    for await (const chunk of res as AsyncIterable<Buffer>) text += chunk.toString();
    return text;
  };
  const refusal = async (p: Promise<unknown>): Promise<RefusedRequestError> => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RefusedRequestError);
    expect((err as Error).message).not.toMatch(/127\.0\.0\.1|localhost|169\.254|:\d{4,5}/);
    return err as RefusedRequestError;
  };
  const only = (url: string) => ({ policy: { allowedPrivateHosts: [new URL(url).host] } });

  test('when the server is allowed, then the request goes through', async () => {
    expect(await body(await guardedRequest(`${base}/ok`, only(base)))).toBe('ok');
  });

  test.each([
    ['an IP literal', (b: string) => `${b}/ok`],
    ['localhost', (b: string) => `http://localhost:${new URL(b).port}/ok`],
    ['an IPv4-mapped IPv6 literal', (b: string) => `http://[::ffff:127.0.0.1]:${new URL(b).port}/ok`],
    ['a decimal IPv4', (b: string) => `http://2130706433:${new URL(b).port}/ok`],
    ['an octal IPv4', (b: string) => `http://0177.0.0.1:${new URL(b).port}/ok`],
  ])('when loopback is named by %s and not allowed, then it is refused and nothing is sent', async (_name, make) => {
    const before = hits.length;
    const err = await refusal(guardedRequest(make(base), { policy: { allowedPrivateHosts: [] } }));
    expect(err).toBeInstanceOf(AddressRefusedError);
    expect(err.message).toBe('refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)');
    expect(hits.length).toBe(before);
  });

  test.each([
    ['another loopback server', '/to-other', 'refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)'],
    ['cloud metadata', '/to-metadata', 'refused: link-local address (cloud metadata) (allow it in C2D_ALLOWED_PRIVATE_HOSTS)'],
    ['an IPv4-mapped loopback', '/to-mapped', 'refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)'],
  ])('when an allowed server redirects to %s, then the redirect is refused and never followed', async (_name, path, message) => {
    const before = otherHits.length;
    expect((await refusal(guardedRequest(`${base}${path}`, only(base)))).message).toBe(message);
    expect(otherHits.length).toBe(before);
  });

  test('when a redirect stays on the origin, then the credentials go along; when it leaves it, they are dropped', async () => {
    const headers = { authorization: 'Bearer s3cret', 'x-api-key': 'k3y', accept: 'text/csv' };
    await body(await guardedRequest(`${base}/to-self`, { ...only(base), headers }));
    expect(hits.at(-1)).toMatchObject({ path: '/ok', headers: { authorization: 'Bearer s3cret', 'x-api-key': 'k3y' } });
    await body(await guardedRequest(`${base}/to-other`, { policy: { allowedPrivateHosts: [new URL(base).host, new URL(otherBase).host] }, headers }));
    const last = otherHits.at(-1);
    expect(last?.headers.authorization).toBeUndefined();
    expect(last?.headers['x-api-key']).toBeUndefined();
    expect(last?.headers.accept).toBe('text/csv');
  });

  test('when a method other than GET or HEAD, or a header off the allow-list, is asked for, then nothing is sent', async () => {
    const before = hits.length;
    expect((await refusal(guardedRequest(`${base}/ok`, { ...only(base), method: 'POST' }))).message).toBe(
      'refused: method POST is not allowed (GET or HEAD only)',
    );
    expect((await refusal(guardedRequest(`${base}/ok`, { ...only(base), headers: { 'X-Forwarded-For': '127.0.0.1' } }))).message).toMatch(
      /^refused: header "x-forwarded-for" is not allowed/,
    );
    expect(hits.length).toBe(before);
  });
});
