/**
 * The network gate: a NetworkPolicy is enforced some time after its pod starts (the enforcer learns the
 * pod's address first), so a kubernetes step that must not reach the private ranges first dials an
 * endpoint there that every unrestricted pod reaches, until it stops answering. One implementation in two
 * forms: NETWORK_GATE_SCRIPT, run by `node -e` as the algorithm pod's init container (any image with
 * node), and networkCut(), run by our configure program before it fetches anything (no init container:
 * the kubelet would notice its end up to a second late).
 *
 * Node built-ins only, and nothing else of ours: the configure step loads this file next to its program
 * (see src/compute/process/steps.ts and pod-images/configure).
 */
import net from 'node:net';
import vm from 'node:vm';

/** What the gate found: `cut` once two dials in a row failed (refused, unreachable or 700 ms without an answer); `answered` dials before. */
export interface GateResult {
  cut: boolean;
  answered: number;
}

/** The dial loop, as source: `(net, host, port, timeoutSeconds) => Promise<GateResult>`, gives up (cut false) past its deadline. */
const DIAL_LOOP = [
  'async (net, host, port, timeoutSeconds) => {',
  '  const end = Date.now() + 1000 * timeoutSeconds;',
  "  const dial = () => new Promise((ok) => { const s = net.connect({ host, port, timeout: 700 }); s.once('connect', () => { s.destroy(); ok(true); }); s.once('timeout', () => { s.destroy(); ok(false); }); s.once('error', () => ok(false)); });",
  '  let cut = 0, answered = 0;',
  '  for (;;) {',
  '    if (await dial()) { cut = 0; answered++; } else if (++cut >= 2) return { cut: true, answered };',
  '    if (Date.now() > end) return { cut: false, answered };',
  '    await new Promise((r) => setTimeout(r, 100));',
  '  }',
  '}',
].join('\n');

/** Why a gate gave up: shown to the consumer, so no address. */
export const GATE_GAVE_UP = 'the network policy was not enforced in time';

/**
 * The gate as an init container runs it (`node -e`, settings in GATE_HOST, GATE_PORT, GATE_TIMEOUT_SECONDS):
 * exits 0 once the network is cut; at its deadline it writes why to its termination message (or
 * GATE_REPORT) and exits 1. An answer means the pod can still reach the network: its policy is not
 * enforced yet.
 */
export const NETWORK_GATE_SCRIPT = [
  `const cut = ${DIAL_LOOP};`,
  'const host = process.env.GATE_HOST, port = Number(process.env.GATE_PORT);',
  "cut(require('node:net'), host, port, Number(process.env.GATE_TIMEOUT_SECONDS)).then((r) => {",
  '  if (r.cut) { console.log(`network cut (${host}:${port} answered ${r.answered} dials first)`); process.exit(0); }',
  `  require('node:fs').writeFileSync(process.env.GATE_REPORT || '/dev/termination-log', ${JSON.stringify(GATE_GAVE_UP)});`,
  '  console.error(`${host}:${port} still answers: the network policy is not enforced`); process.exit(1);',
  '});',
].join('\n');

const dialLoop = vm.runInThisContext(`(${DIAL_LOOP})`) as (n: typeof net, host: string, port: number, timeoutSeconds: number) => Promise<GateResult>;

/** The same gate in this process: resolves once the endpoint stopped answering, or (cut false) past `timeoutSeconds`. */
export function networkCut(host: string, port: number, timeoutSeconds: number): Promise<GateResult> {
  return dialLoop(net, host, port, timeoutSeconds);
}

/**
 * The gate's settings from the environment our kubernetes backend gives the configure container:
 * undefined when there is no gate (no GATE_PORT: the process and docker backends), an Error when they are
 * incomplete (the step must not fetch unguarded then).
 */
export function gateFromEnv(env: NodeJS.ProcessEnv): { host: string; port: number; timeoutSeconds: number } | Error | undefined {
  if (env.GATE_PORT === undefined) return undefined;
  const port = Number(env.GATE_PORT);
  const timeoutSeconds = Number(env.GATE_TIMEOUT_SECONDS ?? 60);
  if (!env.GATE_HOST || !Number.isInteger(port) || port <= 0 || port > 65535 || !(timeoutSeconds > 0))
    return new Error('the network gate has no valid endpoint');
  return { host: env.GATE_HOST, port, timeoutSeconds };
}
