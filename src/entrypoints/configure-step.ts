/**
 * The configuration step, run inside its sandbox: downloads the datasets and the algorithm into
 * /data and says which input failed. Its output is the consumer's configure.log, and its spec holds
 * decrypted file locations: it never prints or reports a URL or a header.
 * Usage: node configure-step.js <spec.json> <report.json>; `--spec-on-stdin` instead of the spec file:
 * started ahead of its turn (the process backend, while the job waits for its slot), it reads its spec on
 * its stdin, one line; end of file without one: it is not wanted and ends at once, having done nothing.
 * Node built-ins only (no node_modules here),
 * plus the SSRF guard (../net/guarded-fetch.js, built-ins only too): every download goes through it; and
 * on kubernetes (GATE_* set) the network gate (../net/network-gate.js) first.
 * Exit: 0 ok, 10 a dataset failed, 11 the algorithm failed, 1 anything else.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigureSpec } from '../compute/backend';
// Our other modules here: Node built-ins only, placed next to this program (../net/*.js) by every backend.
import { type FetchPolicy, guardedRequest, RefusedRequestError } from '../net/guarded-fetch';
import { GATE_GAVE_UP, gateFromEnv, networkCut } from '../net/network-gate';

const DATA = '/data';
const INPUTS = path.join(DATA, 'inputs');
const DDOS = path.join(DATA, 'ddos');
const ALGORITHM = path.join(DATA, 'transformations', 'algorithm');
const ATTEMPTS = 3;
const EXIT = { dataset: 10, algorithm: 11 } as const;

interface UrlFile {
  type?: string;
  url?: string;
  method?: string;
  headers?: Record<string, string>;
  /** sha256 hex of the content the publisher listed (optionally `sha256:`-prefixed); checked when present */
  checksum?: string;
}

/** An input that cannot be fetched; `reason` is safe to show the consumer (no URL). */
class InputFailure extends Error {
  constructor(
    readonly failed: 'dataset' | 'algorithm',
    readonly index: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

class Permanent extends Error {}

/** Same rule as domain/job.ts inputDirName (this program cannot import it: it runs without our other modules). */
const inputDirName = (did: string): string => did.replace(/^did:op:/, '');
const SAFE_NAME = /^[A-Za-z0-9:._-]+$/;
const safeName = (did: string): boolean => SAFE_NAME.test(did) && !did.startsWith('.');

/** Why a request failed, without anything from the URL (error messages can name host and port). */
function networkReason(err: unknown): string {
  const own = (err as { code?: unknown }).code;
  const cause = (err as { cause?: { code?: unknown } }).cause;
  const code = typeof own === 'string' ? own : typeof cause?.code === 'string' ? cause.code : (err as Error).name;
  return `connection failed (${code})`;
}

/** One GET through the SSRF guard (public addresses unless allowed, each redirect checked, no DNS rebinding). */
async function fetchOnce(url: URL, file: UrlFile, dest: string, budget: { left: number }, policy: FetchPolicy): Promise<number> {
  let res;
  try {
    res = await guardedRequest(url, { policy, method: file.method ?? 'GET', headers: file.headers ?? {} });
  } catch (err) {
    if (err instanceof RefusedRequestError) throw new Permanent(err.message);
    throw err;
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    res.resume();
    throw status >= 500 || status === 429 ? new Error(`HTTP ${status}`) : new Permanent(`HTTP ${status}`);
  }
  const fd = fs.openSync(dest, 'w', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > budget.left) {
        res.destroy();
        throw new Permanent('inputs exceed the size limit of this environment');
      }
      hash.update(chunk);
      fs.writeSync(fd, chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
  const expected = file.checksum
    ?.trim()
    .toLowerCase()
    .replace(/^sha256:/, '');
  if (expected && expected !== hash.digest('hex')) {
    // the content is not what the publisher listed: it must not reach the algorithm
    fs.rmSync(dest, { force: true });
    throw new Permanent('checksum mismatch');
  }
  budget.left -= size;
  return size;
}

/** Downloads one file, retrying transient failures; throws Permanent with a URL-free reason. */
async function download(file: UrlFile, dest: string, budget: { left: number }, policy: FetchPolicy): Promise<number> {
  let url: URL;
  try {
    url = new URL(file.url ?? '');
  } catch {
    throw new Permanent('invalid URL');
  }
  if (file.type !== undefined && file.type !== 'url') throw new Permanent(`unsupported file type ${JSON.stringify(file.type).slice(0, 20)}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Permanent('unsupported URL scheme (only http and https)');
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchOnce(url, file, dest, budget, policy);
    } catch (err) {
      if (err instanceof Permanent) throw err;
      const reason = /^HTTP \d+$/.test((err as Error).message) ? (err as Error).message : networkReason(err);
      if (attempt >= ATTEMPTS) throw new Permanent(reason);
      console.log(`attempt ${attempt} failed: ${reason}; retrying`);
      await sleep(300 * attempt);
    }
  }
}

async function configure(spec: ConfigureSpec): Promise<void> {
  const budget = { left: spec.maxInputBytes };
  const policy: FetchPolicy = { allowedPrivateHosts: spec.allowedPrivateHosts ?? [] };
  // outputs and logs too: on Kubernetes the algorithm pod mounts each as a subPath of the job's volume, which must exist and be the step uid's
  for (const dir of [INPUTS, DDOS, path.dirname(ALGORITHM), path.join(DATA, 'outputs'), path.join(DATA, 'logs')]) fs.mkdirSync(dir, { recursive: true });
  // A run again (its activity retried after the first run ended: a worker or Temporal restart) starts
  // from nothing: the first run's inputs are read-only by now, and must not count twice against the budget.
  for (const dir of [INPUTS, DDOS, path.dirname(ALGORITHM)])
    for (const entry of fs.readdirSync(dir)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  for (const [i, ds] of spec.datasets.entries()) {
    if (!safeName(ds.did)) throw new InputFailure('dataset', i, `dataset ${i}: invalid DID`);
    const dir = path.join(INPUTS, inputDirName(ds.did));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(DDOS, ds.did), JSON.stringify(ds.ddo));
    for (const [n, file] of ds.files.entries()) {
      try {
        const size = await download(file, path.join(dir, String(n)), budget, policy);
        console.log(`dataset ${i} file ${n}: ${size} bytes`);
      } catch (err) {
        throw new InputFailure('dataset', i, `dataset ${i} file ${n}: ${err instanceof Permanent ? err.message : 'download failed'}`);
      }
    }
  }
  const algo = spec.algorithm;
  if (algo.did !== null) {
    if (!safeName(algo.did)) throw new InputFailure('algorithm', 0, 'algorithm: invalid DID');
    fs.writeFileSync(path.join(DDOS, algo.did), JSON.stringify(algo.ddo));
  }
  if (typeof algo.rawcode === 'string' && algo.rawcode.length > 0) {
    fs.writeFileSync(ALGORITHM, algo.rawcode);
    console.log(`algorithm: ${Buffer.byteLength(algo.rawcode)} bytes of raw code`);
  } else {
    const file = algo.files?.[0];
    if (!file) throw new InputFailure('algorithm', 0, 'algorithm: no code (neither a file nor raw code)');
    try {
      const size = await download(file, ALGORITHM, budget, policy);
      console.log(`algorithm: ${size} bytes`);
    } catch (err) {
      throw new InputFailure('algorithm', 0, `algorithm file 0: ${err instanceof Permanent ? err.message : 'download failed'}`);
    }
  }
  if (spec.algoCustomData) fs.writeFileSync(path.join(INPUTS, 'algoCustomData.json'), JSON.stringify(spec.algoCustomData));
  if (spec.userdata) fs.writeFileSync(path.join(INPUTS, 'userdata.json'), JSON.stringify(spec.userdata));
  makeReadOnly(INPUTS);
}

function makeReadOnly(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) makeReadOnly(p);
    else if (entry.isFile()) fs.chmodSync(p, 0o444);
  }
}

const SPEC_ON_STDIN = '--spec-on-stdin';

/** The spec's text: from its file, or from stdin (null: end of file without one). */
async function readSpec(specFile: string): Promise<string | null> {
  if (specFile !== SPEC_ON_STDIN) return fs.readFileSync(specFile, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text === '' ? null : text;
}

async function main(): Promise<number> {
  const [specFile, reportFile] = process.argv.slice(2);
  if (!specFile || !reportFile) {
    console.error(`usage: configure-step <spec.json | ${SPEC_ON_STDIN}> <report.json>`);
    return 1;
  }
  const report = (r: unknown): void => fs.writeFileSync(reportFile, JSON.stringify(r));
  const internal = (err: unknown): number => {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    report({ ok: false, reason: `internal error (${code})` });
    console.log(`failed: internal error (${code})`);
    return 1;
  };
  let specText: string | null;
  try {
    specText = await readSpec(specFile);
  } catch (err) {
    return internal(err);
  }
  if (specText === null) return 1; // started ahead and not wanted: nothing done, nothing said
  // kubernetes: nothing is fetched before the pod's NetworkPolicy holds (its enforcer lags the pod's start)
  const gate = gateFromEnv(process.env);
  const refused = gate instanceof Error ? gate.message : gate && !(await networkCut(gate.host, gate.port, gate.timeoutSeconds)).cut ? GATE_GAVE_UP : undefined;
  if (refused) {
    report({ ok: false, reason: `network isolation not confirmed: ${refused}` });
    console.log(`failed: network isolation not confirmed: ${refused}`);
    return 1;
  }
  try {
    await configure(JSON.parse(specText) as ConfigureSpec);
    report({ ok: true });
    console.log('inputs ready');
    return 0;
  } catch (err) {
    if (err instanceof InputFailure) {
      report({ ok: false, failed: err.failed, index: err.index, reason: err.reason });
      console.log(`failed: ${err.reason}`);
      return EXIT[err.failed];
    }
    return internal(err);
  }
}

void main().then((code) => process.exit(code));
