#!/usr/bin/env node
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { parseArgs } from 'node:util';
import { Wallet } from 'ethers';
import { z } from 'zod';
import { isFinal, ProviderClient, ProviderHttpError, type StartJobRequest } from '../client/provider-client';
import { catalogBindings, rebindCatalog } from '../assets/catalog';
import { type Config, loadConfig } from '../config';
import type { JobView } from '../domain/job';
import { JobStatus } from '../domain/status';

const USAGE = `c2d — a consumer of a Compute-to-Data provider

usage:
  c2d help | --help | -h
  c2d envs
  c2d start --env <id> --dataset <did> [--service compute]
            (--algorithm <did> [--algo-service <id>] | --raw <file> --image <name> --entrypoint <cmd> [--tag <tag>] [--checksum sha256:<hex>])
            [--detach]
  c2d status <jobId>
  c2d logs <jobId>
  c2d results <jobId> [--out <dir>]
  c2d stop <jobId>
  c2d delete <jobId>
  c2d catalog rebind [--dry-run] [--dir <catalog dir>]
            (operators, on the provider's host, with its settings: re-encrypts catalog files whose
             ciphertext names no asset, binding each to its DID and service; see docs/security.md)

options:
  --provider <url>     provider URL (or C2D_PROVIDER_URL; default http://127.0.0.1:8030)
  --key-file <path>    file holding the consumer's private key (or C2D_CONSUMER_KEY)

exit codes: 0 done · 1 the job failed · 2 usage error · 3 the provider refused · 4 the provider is unreachable or failing`;

/** What the exit code says went wrong. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

const EXIT = { ok: 0, jobFailed: 1, usage: 2, refused: 3, unavailable: 4 } as const;

const privateKeySchema = z
  .string()
  .trim()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'the consumer key must be a 32-byte hex private key')
  .transform((k) => (k.startsWith('0x') ? k : `0x${k}`));

const jobIdArg = z.tuple([z.string().regex(/^[0-9a-f]{32}$/, 'a job id is 32 lower-case hex characters')]);

const commandSchema = z.discriminatedUnion('command', [
  z.object({ command: z.literal('help') }),
  z.object({ command: z.literal('envs') }),
  z.object({
    command: z.literal('start'),
    env: z.string({ error: '--env is required' }).min(1, '--env is required'),
    dataset: z.string({ error: '--dataset is required' }).min(1, '--dataset is required'),
    service: z.string().default('compute'),
    algorithm: z.string().optional(),
    algoService: z.string().default('compute'),
    raw: z.string().optional(),
    image: z.string().optional(),
    entrypoint: z.string().optional(),
    tag: z.string().default('latest'),
    checksum: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, '--checksum must be sha256:<64 hex>')
      .optional(),
    detach: z.boolean().default(false),
  }),
  z.object({ command: z.literal('status'), jobId: z.string() }),
  z.object({ command: z.literal('logs'), jobId: z.string() }),
  z.object({ command: z.literal('results'), jobId: z.string(), out: z.string().optional() }),
  z.object({ command: z.literal('stop'), jobId: z.string() }),
  z.object({ command: z.literal('delete'), jobId: z.string() }),
  z.object({
    command: z.literal('catalog'),
    action: z.literal('rebind', { error: 'c2d catalog needs an action: rebind' }),
    dryRun: z.boolean().default(false),
  }),
]);

export type CliCommand = z.infer<typeof commandSchema>;
export interface CliInvocation {
  command: CliCommand;
  provider: string;
  /** null for commands that sign nothing and need no address */
  key: string | null;
  /** `catalog rebind`: the provider's catalog directory and key (from its settings) */
  catalog?: { dir: string; providerPrivateKey: string };
}

const cliOptions = {
  provider: { type: 'string' },
  'key-file': { type: 'string' },
  env: { type: 'string' },
  dataset: { type: 'string' },
  service: { type: 'string' },
  algorithm: { type: 'string' },
  'algo-service': { type: 'string' },
  raw: { type: 'string' },
  image: { type: 'string' },
  entrypoint: { type: 'string' },
  tag: { type: 'string' },
  checksum: { type: 'string' },
  detach: { type: 'boolean' },
  out: { type: 'string' },
  'dry-run': { type: 'boolean' },
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMANDS: readonly string[] = commandSchema.options.map((o) => o.shape.command.value);

const message = (err: z.ZodError): string => err.issues.map((i) => i.message).join('; ');

/** Printed under every usage error: the error says what is wrong in one line, the help says the rest. */
const HINT = "Run 'c2d --help' for usage.";

/**
 * The one place the CLI reads its input: argv, its own environment variables and the key file. The key
 * is taken from a file or the environment, never from argv, so it shows up in no process listing.
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliInvocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof cliOptions; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: cliOptions });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  const { values, positionals } = parsed;
  const [name, ...rest] = positionals;
  // `--help` wins over anything else on the line, a broken provider setting included
  if (values.help || name === 'help') return { command: { command: 'help' }, provider: '', key: null };
  const commands = COMMANDS.filter((c) => c !== 'help').join(', ');
  if (!name) throw new CliError(`a command is needed (${commands})`, EXIT.usage);
  if (!COMMANDS.includes(name)) throw new CliError(`unknown command ${name} (commands: ${commands})`, EXIT.usage);
  if (name === 'catalog') return parseCatalog(rest, values, env);
  if (name !== 'envs' && name !== 'start') {
    const id = jobIdArg.safeParse(rest);
    if (!id.success) throw new CliError(`c2d ${name} <jobId>: ${message(id.error)}`, EXIT.usage);
  } else if (rest.length > 0) {
    throw new CliError(`unexpected argument ${rest[0]}`, EXIT.usage);
  }
  const command = commandSchema.safeParse({
    command: name,
    jobId: rest[0],
    env: values.env,
    dataset: values.dataset,
    service: values.service,
    algorithm: values.algorithm,
    algoService: values['algo-service'],
    raw: values.raw,
    image: values.image,
    entrypoint: values.entrypoint,
    tag: values.tag,
    checksum: values.checksum,
    detach: values.detach,
    out: values.out,
  });
  if (!command.success) throw new CliError(message(command.error), EXIT.usage);
  const cmd = command.data;
  if (cmd.command === 'start') {
    if (Boolean(cmd.algorithm) === Boolean(cmd.raw)) throw new CliError('c2d start needs exactly one of --algorithm <did> or --raw <file>', EXIT.usage);
    if (cmd.raw && (!cmd.image || !cmd.entrypoint)) throw new CliError('a raw algorithm needs --image and --entrypoint', EXIT.usage);
  }

  const provider = z
    .url({ protocol: /^https?$/, error: 'the provider URL must be an http(s) URL' })
    .safeParse(values.provider ?? env.C2D_PROVIDER_URL ?? 'http://127.0.0.1:8030');
  if (!provider.success) throw new CliError(message(provider.error), EXIT.usage);

  let key: string | null = null;
  if (cmd.command !== 'envs') {
    const keyFile = values['key-file'];
    let text: string | undefined = env.C2D_CONSUMER_KEY;
    if (keyFile) {
      try {
        text = fs.readFileSync(keyFile, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read the key file ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, EXIT.usage);
      }
    }
    if (text === undefined) throw new CliError('no consumer key: pass --key-file <path> or set C2D_CONSUMER_KEY', EXIT.usage);
    const parsedKey = privateKeySchema.safeParse(text);
    if (!parsedKey.success) throw new CliError(message(parsedKey.error), EXIT.usage);
    key = parsedKey.data;
  }
  return { command: cmd, provider: provider.data.replace(/\/+$/, ''), key };
}

/** `c2d catalog rebind`: runs on the provider's host with its settings (C2D_CATALOG_DIR, the provider key). */
function parseCatalog(rest: string[], values: { 'dry-run'?: boolean; dir?: string }, env: NodeJS.ProcessEnv): CliInvocation {
  if (rest.length > 1) throw new CliError(`unexpected argument ${rest[1]}`, EXIT.usage);
  const command = commandSchema.safeParse({ command: 'catalog', action: rest[0], dryRun: values['dry-run'] });
  if (!command.success) throw new CliError(message(command.error), EXIT.usage);
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    throw new CliError(`the provider's settings: ${(err as Error).message}`, EXIT.usage);
  }
  return {
    command: command.data,
    provider: '',
    key: null,
    catalog: { dir: values.dir ? path.resolve(values.dir) : config.catalogDir, providerPrivateKey: config.providerPrivateKey },
  };
}

interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

const describeJob = (job: JobView): string => {
  const results = job.results === '' ? '' : `\nresults: ${job.results.map((r) => `${r.filename} (${r.filesize} B, ${r.type})`).join(', ')}`;
  const term = job.terminationDetails
    ? `\nexit code: ${job.terminationDetails.exitCode ?? '-'}${job.terminationDetails.oomKilled ? ' (out of memory)' : ''}${job.terminationDetails.reason ? ` — ${job.terminationDetails.reason}` : ''}`
    : '';
  return `job ${job.jobId}\nstatus: ${job.status} ${job.statusText}${job.stopreq ? ` (stop requested: ${job.stopreq})` : ''}${job.removed ? ' (removed)' : ''}\nenvironment: ${job.environment}\ncreated: ${new Date(Number(job.dateCreated) * 1000).toISOString()}${results}${term}\n`;
};

const progressBar = (job: JobView): string => {
  const width = 20;
  const filled = Math.round((Math.min(job.status, JobStatus.JobFinished) / JobStatus.JobFinished) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${job.status} ${job.statusText}`;
};

const succeeded = (job: JobView): boolean =>
  job.status === JobStatus.JobFinished && (job.terminationDetails?.exitCode ?? 0) === 0 && !job.terminationDetails?.oomKilled;

async function requireJob(client: ProviderClient, jobId: string): Promise<JobView> {
  const job = await client.job(jobId);
  if (!job) throw new CliError(`no job ${jobId} for ${client.address}`, EXIT.jobFailed);
  return job;
}

/** The algorithm's log response, or null while there is none yet (404). */
async function openLog(client: ProviderClient, jobId: string): Promise<Response | null> {
  const res = await client.logs(jobId);
  if (res.status === 404) return null;
  if (!res.ok || !res.body) throw new ProviderHttpError(res.status, await res.text(), '/api/services/computeLogs');
  return res;
}

const logOf = (res: Response): Readable => Readable.fromWeb(res.body as WebReadableStream);

/** How long a followed start waits, once the job is over, for the live log to finish. */
const LOG_DRAIN_MS = 10_000;

/** Bytes a stream has passed on (what of the algorithm log the consumer has already seen). */
class Counted extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/**
 * Polls the job, drawing its progress on stderr and its algorithm log on stdout, until it ends. The live
 * log may miss its end (it was opened in the moment the step's files went away, or it broke off): once
 * the job is over, what the stored log holds past what was shown is printed, so each line shows once.
 */
async function follow(client: ProviderClient, jobId: string, io: Io): Promise<JobView> {
  let log: Promise<void> | null = null;
  let logStream: Readable | null = null;
  const shown = new Counted();
  let last = -1;
  for (;;) {
    const job = await requireJob(client, jobId);
    if (job.status !== last) {
      last = job.status;
      io.err.write(io.err.isTTY ? `\r\x1b[K${progressBar(job)}${isFinal(job) ? '\n' : ''}` : `${progressBar(job)}\n`);
    }
    // live while the algorithm runs, the stored log once published; not there yet → asked again next round
    if (!log && job.status >= JobStatus.RunningAlgorithm) {
      const res = await withFreshNonce(() => openLog(client, jobId));
      // a log that breaks off costs the display, not the job: the stored log stays downloadable
      if (res) {
        logStream = logOf(res);
        log = pipeline(logStream, shown, io.out, { end: false }).catch(() => undefined);
      }
    }
    if (isFinal(job)) {
      // the provider ends a live log when the step ends; a job that is over does not wait on a log that lingers
      const drained = log ? await Promise.race([log.then(() => true), sleep(LOG_DRAIN_MS, false, { ref: false })]) : true;
      if (!drained) {
        logStream?.destroy();
        await log;
      }
      await showRest(client, job, shown.bytes, io);
      return job;
    }
    await sleep(300);
  }
}

/** The stored algorithm log past its first `seen` bytes (a job that published none: nothing). */
async function showRest(client: ProviderClient, job: JobView, seen: number, io: Io): Promise<void> {
  const stored = Array.isArray(job.results) ? job.results.find((r) => r.type === 'algorithmLog') : undefined;
  if (!stored || stored.filesize <= seen) return;
  try {
    const res = await withFreshNonce(() => openLog(client, job.jobId));
    if (!res) return;
    let skip = seen;
    for await (const chunk of logOf(res) as AsyncIterable<Buffer>) {
      const rest = chunk.subarray(Math.min(skip, chunk.length));
      skip -= chunk.length - rest.length;
      if (rest.length > 0) io.out.write(rest);
    }
  } catch {
    io.err.write('c2d: the log broke off (see `c2d logs`)\n');
  }
}

function startRequest(cmd: Extract<CliCommand, { command: 'start' }>): StartJobRequest {
  const dataset = { documentId: cmd.dataset, serviceId: cmd.service };
  if (cmd.algorithm) return { environment: cmd.env, dataset, algorithm: { documentId: cmd.algorithm, serviceId: cmd.algoService } };
  let rawcode: string;
  try {
    rawcode = fs.readFileSync(cmd.raw ?? '', 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the algorithm file ${cmd.raw}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, EXIT.usage);
  }
  const image = cmd.image ?? '';
  // Runtimes of a process backend have no registry digest: the image name and tag stand for it.
  const checksum = cmd.checksum ?? `sha256:${crypto.createHash('sha256').update(`${image}:${cmd.tag}`).digest('hex')}`;
  return { environment: cmd.env, dataset, algorithm: { meta: { rawcode, container: { entrypoint: cmd.entrypoint ?? '', image, tag: cmd.tag, checksum } } } };
}

async function downloadResults(client: ProviderClient, job: JobView, dir: string, io: Io): Promise<void> {
  if (job.results === '') throw new CliError(`job ${job.jobId} has no results yet (status ${job.status} ${job.statusText})`, EXIT.jobFailed);
  fs.mkdirSync(dir, { recursive: true });
  for (const [index, entry] of job.results.entries()) {
    const res = await withFreshNonce(async () => {
      const answer = await client.result(job.jobId, index);
      if (!answer.ok || !answer.body) throw new ProviderHttpError(answer.status, await answer.text(), '/api/services/computeResult');
      return answer;
    });
    // the name comes from the provider: keep it inside the target directory
    const target = path.join(dir, path.basename(entry.filename));
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), fs.createWriteStream(target));
    io.err.write(`${target} (${entry.filesize} B)\n`);
  }
}

/**
 * Another c2d run (or any client) of the same consumer may take the nonce we signed with first; the
 * provider then refuses the request without acting on it, so signing again with a fresh nonce is safe.
 */
async function withFreshNonce<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5 || !(err instanceof ProviderHttpError && err.status === 401 && /nonce/i.test(err.body))) throw err;
      await sleep(50 * attempt);
    }
  }
}

/** Re-encrypts the catalog's unbound file lists; lists what it did (never a file location). */
async function rebind(cmd: Extract<CliCommand, { command: 'catalog' }>, catalog: NonNullable<CliInvocation['catalog']>, io: Io): Promise<number> {
  const rebound = await rebindCatalog(catalog.dir, catalog.providerPrivateKey, { dryRun: cmd.dryRun });
  for (const r of rebound) io.out.write(`${cmd.dryRun ? 'would rebind' : 'rebound'}\t${r.file}\t${r.did}\t${r.serviceId}\n`);
  const left = (await catalogBindings(catalog.dir, catalog.providerPrivateKey)).filter((b) => b.state === 'foreign');
  for (const f of left) io.err.write(`c2d: not encrypted for this provider, left as it is: ${f.file} (${f.did}, service ${f.serviceId})\n`);
  io.err.write(`${rebound.length} service(s) ${cmd.dryRun ? 'to rebind' : 'rebound'} in ${catalog.dir}\n`);
  return EXIT.ok;
}

/** Runs one command; returns the exit code. */
export async function runCli(inv: CliInvocation, io: Io): Promise<number> {
  const cmd = inv.command;
  if (cmd.command === 'help') {
    io.out.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (cmd.command === 'catalog') return rebind(cmd, inv.catalog!, io);
  const client = new ProviderClient(inv.provider, new Wallet(inv.key ?? Wallet.createRandom().privateKey));
  switch (cmd.command) {
    case 'envs': {
      for (const e of await client.environments())
        io.out.write(`${e.id}\tjobs ${e.currentJobs}/${e.maxJobs}\tprice/min ${e.priceMin}\tmax duration ${e.maxJobDuration} s\n`);
      return EXIT.ok;
    }
    case 'start': {
      const request = startRequest(cmd);
      const job = await withFreshNonce(() => client.startJob(request));
      io.out.write(`${job.jobId}\n`);
      if (cmd.detach) return EXIT.ok;
      const done = await follow(client, job.jobId, io);
      io.err.write(describeJob(done));
      return succeeded(done) ? EXIT.ok : EXIT.jobFailed;
    }
    case 'status': {
      io.out.write(describeJob(await requireJob(client, cmd.jobId)));
      return EXIT.ok;
    }
    case 'logs': {
      const res = await withFreshNonce(() => openLog(client, cmd.jobId));
      if (!res) throw new CliError(`no log for job ${cmd.jobId} yet`, EXIT.jobFailed);
      await pipeline(logOf(res), io.out, { end: false });
      return EXIT.ok;
    }
    case 'results': {
      await downloadResults(client, await requireJob(client, cmd.jobId), cmd.out ?? cmd.jobId, io);
      return EXIT.ok;
    }
    case 'stop': {
      const job = await withFreshNonce(() => client.stopJob(cmd.jobId));
      if (!job) throw new CliError(`no job ${cmd.jobId}`, EXIT.jobFailed);
      io.out.write(describeJob(job));
      return EXIT.ok;
    }
    case 'delete': {
      await requireJob(client, cmd.jobId);
      await withFreshNonce(() => client.deleteJob(cmd.jobId));
      io.out.write(`deleted the results of ${cmd.jobId}\n`);
      return EXIT.ok;
    }
  }
}

/** The exit code and message for a failure; the key is never part of either. */
function failure(err: unknown): { code: number; text: string } {
  if (err instanceof CliError) return { code: err.exitCode, text: err.message };
  if (err instanceof ProviderHttpError) return { code: err.status >= 500 ? EXIT.unavailable : EXIT.refused, text: `the provider refused: ${err.message}` };
  if (err instanceof TypeError && /fetch failed/.test(err.message))
    return { code: EXIT.unavailable, text: `the provider is unreachable: ${(err.cause as Error | undefined)?.message ?? err.message}` };
  return { code: EXIT.unavailable, text: err instanceof Error ? err.message : String(err) };
}

/**
 * Help goes to stdout and exits 0; every failure goes to stderr with its own exit code, a usage error
 * (exit 2) as one line and a hint where the help is (clig.dev conventions).
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  try {
    return await runCli(parseCli(argv, env), io);
  } catch (err) {
    const { code, text } = failure(err);
    io.err.write(`c2d: ${text}\n${code === EXIT.usage ? `${HINT}\n` : ''}`);
    return code;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), process.env, { out: process.stdout, err: process.stderr }).then((code) => {
    process.exitCode = code;
  });
}
