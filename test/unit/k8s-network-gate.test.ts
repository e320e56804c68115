/**
 * The network gate (src/net/network-gate.ts): as the algorithm pod's init container runs it (`node -e`),
 * and as the configure program runs it before fetching, against a real TCP endpoint on loopback that
 * answers, then stops.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ConfigureSpec } from '../../src/compute/backend';
import { NETWORK_GATE_SCRIPT, networkCut } from '../../src/net/network-gate';

function runGate(port: number, timeoutSeconds: number, report: string): { done: Promise<{ code: number | null; out: string }> } {
  const child = spawn(process.execPath, ['-e', NETWORK_GATE_SCRIPT], {
    env: { GATE_HOST: '127.0.0.1', GATE_PORT: String(port), GATE_TIMEOUT_SECONDS: String(timeoutSeconds), GATE_REPORT: report },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, out }))) };
}

const listen = async (): Promise<net.Server> => {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
};

describe('the network gate', () => {
  const report = path.join(os.tmpdir(), `c2d-gate-report-${process.pid}`);
  afterEach(() => fs.rmSync(report, { force: true }));

  it('when the endpoint answers at first and then stops answering (the policy took hold), then the gate lets the algorithm start: exit 0', async () => {
    const server = await listen();
    const { port } = server.address() as net.AddressInfo;
    const gate = runGate(port, 30, report);
    await new Promise((r) => setTimeout(r, 600)); // a few dials answered
    server.close();
    const { code, out } = await gate.done;
    expect(code).toBe(0);
    expect(out).toMatch(new RegExp(`^network cut \\(127\\.0\\.0\\.1:${port} answered [1-9]\\d* dials first\\)`));
    expect(fs.existsSync(report)).toBe(false);
  }, 20_000);

  it('when the endpoint never answers (the policy held from the start), then the gate lets the algorithm start after two failed dials', async () => {
    const server = await listen();
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    const { code, out } = await runGate(port, 30, report).done;
    expect(code).toBe(0);
    expect(out).toContain(`network cut (127.0.0.1:${port} answered 0 dials first)`);
  }, 20_000);

  it('when the endpoint keeps answering (no policy enforced), then the gate fails at its deadline and says why', async () => {
    const server = await listen();
    const { port } = server.address() as net.AddressInfo;
    const t0 = Date.now();
    const { code, out } = await runGate(port, 2, report).done;
    server.close();
    expect(code).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect(out).toContain('the network policy is not enforced');
    expect(fs.readFileSync(report, 'utf8')).toBe('the network policy was not enforced in time');
  }, 20_000);

  it('when the configure program finds the endpoint answering, then stopping, then it goes on: the gate in its own process says cut', async () => {
    const server = await listen();
    const { port } = server.address() as net.AddressInfo;
    const gate = networkCut('127.0.0.1', port, 30);
    await new Promise((r) => setTimeout(r, 600));
    server.close();
    const r = await gate;
    expect(r.cut).toBe(true);
    expect(r.answered).toBeGreaterThan(0);
  }, 20_000);

  describe('the configure program (dist/src/entrypoints/configure-step.js, built by npm test before jest)', () => {
    const program = path.resolve('dist/src/entrypoints/configure-step.js');
    const dir = path.join(os.tmpdir(), `c2d-gate-configure-${process.pid}`);
    beforeEach(() => fs.mkdirSync(dir, { recursive: true }));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const runConfigure = async (env: Record<string, string>, dataPort: number): Promise<{ code: number | null; report: unknown; out: string }> => {
      const spec = path.join(dir, 'spec.json');
      const reportFile = path.join(dir, 'report.json');
      fs.writeFileSync(
        spec,
        JSON.stringify({
          datasets: [{ did: 'did:op:abc', ddo: {}, files: [{ type: 'url', url: `http://127.0.0.1:${dataPort}/secret.csv`, method: 'GET' }] }],
          algorithm: { did: null, ddo: null, rawcode: 'print(1)' },
          maxInputBytes: 1024,
          allowedPrivateHosts: ['127.0.0.1'],
        } satisfies ConfigureSpec),
      );
      const child = spawn(process.execPath, [program, spec, reportFile], { env: { PATH: process.env.PATH ?? '', ...env } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { code, report: JSON.parse(fs.readFileSync(reportFile, 'utf8')), out };
    };

    it.each([
      ['the endpoint keeps answering (no policy enforced)', 'the network policy was not enforced in time', true],
      ['the gate has no endpoint to dial', 'the network gate has no valid endpoint', false],
    ])(
      'when %s, then it fetches nothing and reports that isolation was not confirmed',
      async (_, why, withHost) => {
        let hits = 0;
        const data = http.createServer((_req, res) => {
          hits++;
          res.end('secret\n');
        });
        await new Promise<void>((r) => data.listen(0, '127.0.0.1', r));
        const endpoint = await listen();
        try {
          const env = {
            GATE_HOST: withHost ? '127.0.0.1' : '',
            GATE_PORT: String((endpoint.address() as net.AddressInfo).port),
            GATE_TIMEOUT_SECONDS: '1',
          };
          const { code, report, out } = await runConfigure(env, (data.address() as net.AddressInfo).port);
          expect({ code, report }).toEqual({ code: 1, report: { ok: false, reason: `network isolation not confirmed: ${why}` } });
          expect(out).not.toContain('127.0.0.1'); // the consumer's configure.log names no address
          expect(hits).toBe(0);
        } finally {
          endpoint.close();
          data.close();
        }
      },
      20_000,
    );
  });
});
