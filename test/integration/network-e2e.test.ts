import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { ProviderClient } from '../../src/client/provider-client';
import { type HardhatNode, startHardhatNode } from '../../tools/chain/hardhat-node';
import { jobNetworkNames } from '../../src/compute/process/network';
import { freePort } from '../../tools/temporal-server';
import { describeOnBackends, type SuiteBackend } from '../helpers/backends';
import { testState } from '../helpers/state';
import { NON_PUBLIC_IPV4 } from '../../src/compute/process/network';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { readLiveLogUntil, resultText, waitFor } from './helpers';

/**
 * `allowNetworkAccess` through the whole stack. "The outside world" is a network namespace this test
 * creates (its own veth pair and 198.18.x.0/30 addresses, routed by the host), serving HTTP. The
 * provider's own services stay on the host: the API and Temporal (loopback), a chain node and a
 * plain server bound to 0.0.0.0 (reachable on every host address).
 */
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

interface Outside {
  addr: string;
  port: number;
  set(key: string): Promise<void>;
  close(): void;
}

/** A namespace with an HTTP server: `GET /hello` → "outside <peer>", `/set/<k>` and `/get/<k>` hold flags. */
async function startOutside(): Promise<Outside> {
  const tag = crypto.randomBytes(4).toString('hex');
  const ns = `c2dtest-out-${tag}`;
  const link = `tnet${tag}`;
  const x = crypto.randomBytes(1)[0] ?? 7;
  const [hostAddr, addr] = [`198.18.${x}.1`, `198.18.${x}.2`];
  ip('netns', 'add', ns);
  ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ip('addr', 'add', `${hostAddr}/30`, 'dev', link);
  ip('link', 'set', link, 'up');
  ip('-n', ns, 'addr', 'add', `${addr}/30`, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'route', 'add', 'default', 'via', hostAddr);
  const port = 8080;
  const code = `const flags = new Set();
    require('http').createServer((q, r) => {
      const [, op, k] = q.url.split('/');
      if (op === 'set') { flags.add(k); return r.end('ok'); }
      if (op === 'get') return r.end(flags.has(k) ? 'yes' : 'no');
      r.end('outside ' + q.socket.remoteAddress);
    }).listen(${port}, '0.0.0.0', () => console.log('listening'));`;
  const server: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    server.stdout?.once('data', () => resolve());
    server.once('exit', (c) => reject(new Error(`the outside server exited with ${c}`)));
  });
  return {
    addr,
    port,
    set: async (key) => {
      const res = await fetch(`http://${addr}:${port}/set/${key}`);
      expect(await res.text()).toBe('ok');
    },
    close: () => {
      server.kill('SIGKILL');
      try {
        ip('link', 'del', link);
      } catch {
        // already gone
      }
      ip('netns', 'del', ns);
    },
  };
}

/** Every IPv4 address of the host, loopback included. */
const hostAddresses = (): string[] =>
  Object.values(os.networkInterfaces())
    .flat()
    .filter((i) => i?.family === 'IPv4')
    .map((i) => i?.address ?? '');

/** The algorithm: dials every target at once, fetches the outside, lists its interfaces. */
const probe = (outside: Outside, targets: [string, number][], waitFlag?: string): string => `
  const net = require('net'); const fs = require('fs'); const os = require('os');
  const dial = (host, port) => new Promise((res) => { const s = net.connect(port, host);
    const t = setTimeout(() => { s.destroy(); res('timeout'); }, 3000);
    s.once('connect', () => { clearTimeout(t); s.destroy(); res('connected'); }); s.once('error', (e) => { clearTimeout(t); res(e.code); }); });
  const get = (path) => fetch('http://${outside.addr}:${outside.port}' + path, { signal: AbortSignal.timeout(3000) }).then((r) => r.text(), (e) => 'failed: ' + (e.cause?.code ?? e.name));
  (async () => {
    const ifs = os.networkInterfaces();
    const own = (ifs.eth0 ?? []).find((i) => i.family === 'IPv4')?.address;
    // the host end of its own link: the gateway
    const gateway = own ? own.replace(/\\d+$/, (n) => String(Number(n) - 1)) : null;
    const targets = ${JSON.stringify(targets)};
    if (gateway) for (const p of new Set(targets.map((t) => t[1]))) targets.push([gateway, p]);
    const dials = Object.fromEntries(await Promise.all(targets.map(async ([h, p]) => [h + ':' + p, await dial(h, p)])));
    const out = { interfaces: Object.keys(ifs).sort(), own, outside: await get('/hello'), dials };
    fs.writeFileSync('/data/outputs/net.json', JSON.stringify(out));
    ${waitFlag ? `console.log('waiting'); while ((await get('/get/${waitFlag}')) !== 'yes') await new Promise((r) => setTimeout(r, 200));` : ''}
  })();`;

describeOnBackends(
  { podman: true, needsRoot: 'network namespaces, veth pairs and nftables' },
  (name) => `algorithm network access, end to end, on the ${name} backend`,
  (backend: SuiteBackend) => {
    let stack: Stack;
    let client: ProviderClient;
    let data: Awaited<ReturnType<typeof serveFiles>>;
    let outside: Outside;
    let chain: HardhatNode;
    let anyAddr: http.Server;
    let open: string;
    let closed: string;
    let targets: [string, number][];

    beforeAll(async () => {
      await backend.setup();
      data = await serveFiles({ 'a.csv': 'x\n1\n', 'b.csv': 'x\n2\n', 'c.csv': 'x\n3\n' });
      outside = await startOutside();
      chain = await startHardhatNode({ host: '0.0.0.0', port: await freePort() });
      anyAddr = http.createServer((_q, r) => r.end('host service'));
      await new Promise<void>((r) => anyAddr.listen(0, '0.0.0.0', r));
      stack = await startStack({
        environments: [backend.environment({ id: 'net', maxJobs: 4, ramGB: 0.25, maxJobDuration: 120, maxProcesses: 64 })],
        // the outside world of this test lives in 198.18.0.0/15 (benchmarking): the one non-public range it lets through
        env: { C2D_ALGORITHM_NETWORK_DENY: NON_PUBLIC_IPV4.filter((c) => c !== '198.18.0.0/15').join(',') },
      });
      client = stack.consumer();
      const ports = [
        Number(new URL(stack.baseUrl).port),
        Number(testState().temporalAddress.split(':')[1]),
        Number(new URL(chain.rpcUrl).port),
        (anyAddr.address() as AddressInfo).port,
      ];
      targets = hostAddresses().flatMap((h) => ports.map((p): [string, number] => [h, p]));
      const dataset = (name: string, allow: boolean) =>
        stack.publish(client, { type: 'dataset', name, urls: [data.url(`${name}.csv`)], compute: { allowRawAlgorithm: true, allowNetworkAccess: allow } });
      open = await dataset('a', true);
      closed = await dataset('c', false);
    }, 600_000);

    afterAll(async () => {
      await stack?.stop();
      await chain?.stop();
      anyAddr?.close();
      outside?.close();
      data?.close();
      backend.teardown();
    });

    const run = async (code: string, datasets: string[]) => {
      const [first, ...more] = datasets.map((documentId) => ({ documentId, serviceId: 'compute' }));
      if (!first) throw new Error('no dataset');
      const job = await client.startJob({
        environment: 'net',
        dataset: first,
        ...(more.length ? { additionalDatasets: more } : {}),
        algorithm: backend.nodeRaw(code),
      });
      return job;
    };
    const report = async (jobId: string) => {
      const done = await client.waitForJob(jobId, { timeoutMs: 60_000 });
      expect(done.status).toBe(70);
      return {
        done,
        net: JSON.parse(await resultText(client, done, 'net.json')) as { interfaces: string[]; own?: string; outside: string; dials: Record<string, string> },
      };
    };
    const logUntil = async (jobId: string, text: string) => {
      await waitFor('the algorithm to start', async () => (await client.job(jobId))?.status === 40, 30_000, 100);
      await readLiveLogUntil(client, jobId, text, 30_000);
    };
    const noLeftovers = (jobId: string) =>
      waitFor('the job network (and on docker its holder container) to be removed', async () => {
        const n = jobNetworkNames(jobId);
        return (
          !fs.existsSync(n.netnsPath) &&
          !fs.existsSync(`/sys/class/net/${n.hostLink}`) &&
          !fs.readdirSync('/run/c2d-net/slots').some((s) => fs.readFileSync(`/run/c2d-net/slots/${s}`, 'utf8') === jobId) &&
          (await backend.leftovers(jobId)).length === 0
        );
      });

    it('when every dataset allows network access, then the algorithm reaches the outside but none of the provider’s services on any host address', async () => {
      const job = await run(probe(outside, targets), [open]);
      const { net } = await report(job.jobId);
      expect(net.interfaces).toEqual(['eth0', 'lo']);
      expect(net.outside).toMatch(/^outside 198\.18\.\d+\.1$/); // masqueraded behind the host
      const hosts = new Set(Object.keys(net.dials).map((k) => k.split(':')[0]));
      expect(hosts.size).toBeGreaterThanOrEqual(hostAddresses().length + 1); // every host address and the gateway
      expect(Object.keys(net.dials).length).toBeGreaterThanOrEqual(4 * (hostAddresses().length + 1));
      // refused at once by the firewall's TCP reset (on 127.0.0.1: its own empty loopback)
      for (const [target, result] of Object.entries(net.dials)) expect([target, result]).toEqual([target, 'ECONNREFUSED']);
      // the test itself reaches them on those addresses: it is the firewall that refuses the algorithm
      const eth = hostAddresses().find((h) => !h.startsWith('127.'));
      if (eth) expect(await (await fetch(`http://${eth}:${(anyAddr.address() as AddressInfo).port}/`)).text()).toBe('host service');
      await noLeftovers(job.jobId);
    });

    it('when the dataset does not allow network access, then the algorithm has only lo and reaches nothing', async () => {
      const job = await run(probe(outside, targets), [closed]);
      const { net } = await report(job.jobId);
      expect(net.interfaces).toEqual(['lo']);
      expect(net.outside).toMatch(/^failed/);
      for (const [target, result] of Object.entries(net.dials))
        expect([target, result]).toEqual([target, expect.stringMatching(/^(ECONNREFUSED|ENETUNREACH)$/)]);
      expect(fs.existsSync(jobNetworkNames(job.jobId).netnsPath)).toBe(false);
    });

    it('when one dataset of three does not allow network access, then the algorithm gets no network', async () => {
      const second = await stack.publish(client, {
        type: 'dataset',
        name: 'b',
        urls: [data.url('b.csv')],
        compute: { allowRawAlgorithm: true, allowNetworkAccess: true },
      });
      const job = await run(probe(outside, []), [open, second, closed]);
      const { net } = await report(job.jobId);
      expect(net.interfaces).toEqual(['lo']);
      expect(net.outside).toMatch(/^failed/);
    });

    it('when two jobs have network access, then neither reaches the other, and a worker killed meanwhile leaves no interface behind', async () => {
      const flag = crypto.randomBytes(4).toString('hex');
      const listener = await run(
        `require('net').createServer((s) => s.end('job a')).listen(9000, '0.0.0.0', () => console.log('listening'));
      const poll = () => fetch('http://${outside.addr}:${outside.port}/get/${flag}').then((r) => r.text(), () => 'no').then((t) => t === 'yes' ? process.exit(0) : setTimeout(poll, 200)); poll();`,
        [open],
      );
      await logUntil(listener.jobId, 'listening');
      const listenerAddr = /inet (\S+)\//.exec(ip('-n', jobNetworkNames(listener.jobId).netns, '-4', 'addr', 'show', 'eth0'))?.[1];
      expect(listenerAddr).toMatch(/^10\.213\./);
      const dialer = await run(probe(outside, [[listenerAddr ?? '', 9000]], flag), [open]);
      await logUntil(dialer.jobId, 'waiting');
      // both algorithms run on: the worker dies, a new one re-attaches and still tears their networks down
      stack.worker.kill('SIGKILL');
      await new Promise((r) => stack.worker.once('exit', r));
      stack.startWorker();
      await outside.set(flag);
      const { net } = await report(dialer.jobId);
      expect((await client.waitForJob(listener.jobId, { timeoutMs: 60_000 })).status).toBe(70);
      expect(net.outside).toMatch(/^outside /);
      expect(net.dials[`${listenerAddr}:9000`]).not.toBe('connected');
      await noLeftovers(listener.jobId);
      await noLeftovers(dialer.jobId);
    }, 120_000);
  },
);
