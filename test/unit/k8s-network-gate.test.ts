/**
 * The algorithm pod's network gate (NETWORK_GATE_SCRIPT in src/compute/kubernetes/specs.ts), run as the
 * init container runs it (`node -e`), against a real TCP endpoint on loopback that answers, then stops.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NETWORK_GATE_SCRIPT } from '../../src/compute/kubernetes/specs';

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
});
