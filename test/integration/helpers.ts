import fs from 'node:fs';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';

export const nodeRaw = (rawcode: string) => ({
  meta: { rawcode, container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` } },
});

/** Host pids of the processes in the job's cgroups (any step): how we see whether an algorithm still runs. */
export function jobPids(jobId: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(jobId)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function resultText(client: ProviderClient, job: JobView, filename: string): Promise<string> {
  const index = job.results === '' ? -1 : job.results.findIndex((r) => r.filename === filename);
  if (index < 0) throw new Error(`${filename} not in results: ${JSON.stringify(job.results)}`);
  const res = await client.result(job.jobId, index);
  if (!res.ok) throw new Error(`computeResult ${filename}: ${res.status} ${await res.text()}`);
  return res.text();
}

/** Reads the live log stream (computeLogs) until `text` shows up, then lets go of it. */
export async function readLiveLogUntil(client: ProviderClient, jobId: string, text: string, timeoutMs = 15_000): Promise<string> {
  const res = await client.logs(jobId);
  if (!res.ok || !res.body) throw new Error(`computeLogs answered ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!seen.includes(text)) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
  if (!seen.includes(text)) throw new Error(`the live log never showed ${JSON.stringify(text)}; it showed ${JSON.stringify(seen)}`);
  return seen;
}
