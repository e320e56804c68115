/**
 * The SSRF guard's cost per download: the same file fetched with plain node:http and through
 * guardedRequest (src/net/guarded-fetch.ts), by IP literal (the check alone) and by host name (the
 * check plus a resolution of every address). Prints per-download medians and the guard's overhead.
 * Usage: npm run build && node dist/bench/fetch.js [downloads]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { guardedRequest } from '../src/net/guarded-fetch';

const SIZE = 64 * 1024;

async function drain(res: http.IncomingMessage): Promise<number> {
  let n = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) n += chunk.byteLength;
  return n;
}

const plain = (url: string): Promise<http.IncomingMessage> => new Promise((resolve, reject) => http.get(url, resolve).on('error', reject));

async function measure(n: number, fetchOnce: () => Promise<http.IncomingMessage>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const got = await drain(await fetchOnce());
    times.push(performance.now() - t);
    if (got !== SIZE) throw new Error(`got ${got} bytes, expected ${SIZE}`);
  }
  return times;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const ms = (x: number): string => `${x.toFixed(3)} ms`;

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1000);
  const body = Buffer.alloc(SIZE, 7);
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const byIp = `http://127.0.0.1:${port}/file`;
  const byName = `http://localhost:${port}/file`;
  // the bench's own data server on loopback: allowed as an operator would allow one
  const policy = { allowedPrivateHosts: [`127.0.0.1:${port}`, `localhost:${port}`] };
  try {
    const runs: [string, () => Promise<http.IncomingMessage>][] = [
      ['plain node:http, IP literal', () => plain(byIp)],
      ['guarded, IP literal', () => guardedRequest(byIp, { policy })],
      ['plain node:http, host name', () => plain(byName)],
      ['guarded, host name (resolved and checked)', () => guardedRequest(byName, { policy })],
    ];
    for (const [, run] of runs) await measure(Math.min(100, n), run); // warm-up: JIT, sockets
    const medians = new Map<string, number>();
    // interleaved rounds, so drift of the machine hits every variant alike
    const rounds = 5;
    const all = new Map<string, number[]>(runs.map(([name]) => [name, []]));
    for (let r = 0; r < rounds; r++) for (const [name, run] of runs) all.get(name)?.push(...(await measure(Math.ceil(n / rounds), run)));
    for (const [name, times] of all) medians.set(name, median(times));
    console.log(`SSRF guard: ${n} downloads of ${SIZE / 1024} KiB from a loopback server, median per download`);
    for (const [name, m] of medians) console.log(`  ${name.padEnd(44)} ${ms(m)}`);
    const over = (g: string, p: string): string => ms((medians.get(g) ?? NaN) - (medians.get(p) ?? NaN));
    console.log(
      `  guard overhead per download: ${over('guarded, IP literal', 'plain node:http, IP literal')} (IP literal), ${over('guarded, host name (resolved and checked)', 'plain node:http, host name')} (host name)`,
    );
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
