import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { repoRoot } from './paths';
import { waitForPort } from './temporal-server';

/**
 * A local S3-compatible server (versitygw's posix backend: buckets are directories under `dir`), for
 * tests and local clusters. Credentials are generated per start unless given; they reach the server
 * through its environment, never its command line.
 */
export interface S3ServerOptions {
  dir: string;
  port: number;
  /** buckets created once the server listens */
  buckets: string[];
  credentials?: { accessKeyId: string; secretAccessKey: string };
  logFile?: string;
  bin?: string;
}

export interface S3Server {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  process: ChildProcess;
  stop(): Promise<void>;
}

export function s3Binary(): string {
  return execFileSync('bash', [path.join(repoRoot, 'tools/ensure-s3.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export async function startS3Server(o: S3ServerOptions): Promise<S3Server> {
  const bin = o.bin ?? s3Binary();
  const credentials = o.credentials ?? {
    accessKeyId: `c2d${crypto.randomBytes(6).toString('hex')}`,
    secretAccessKey: crypto.randomBytes(24).toString('base64url'),
  };
  const region = 'us-east-1';
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const out = o.logFile ? fs.openSync(o.logFile, 'a') : 'ignore';
  const child = spawn(bin, ['--port', `127.0.0.1:${o.port}`, '--quiet', 'posix', o.dir], {
    stdio: ['ignore', out, out],
    env: { ...process.env, ROOT_ACCESS_KEY_ID: credentials.accessKeyId, ROOT_SECRET_ACCESS_KEY: credentials.secretAccessKey, VGW_REGION: region },
  });
  if (typeof out === 'number') fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const failed = exited.then((code) => {
    throw new Error(`versitygw exited with ${code}${o.logFile ? ` (see ${o.logFile})` : ''}`);
  });
  failed.catch(() => undefined);
  const endpoint = `http://127.0.0.1:${o.port}`;
  try {
    await Promise.race([waitForPort(o.port, '127.0.0.1', 30_000), failed]);
    const client = new S3Client({ endpoint, region, credentials, forcePathStyle: true });
    for (const Bucket of o.buckets) {
      await client.send(new CreateBucketCommand({ Bucket })).catch((err: Error) => {
        if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
      });
    }
    client.destroy();
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    endpoint,
    region,
    credentials,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
