import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

/**
 * Runs in the worker thread: the publisher's patterns on batches of lines. Plain JavaScript (eval'd),
 * so it runs the same from dist/ and under the test transformer.
 */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const patterns = workerData.patterns.map((p) => new RegExp(p, 'gu'));
parentPort.on('message', ({ id, lines }) => {
  const out = lines.map((text) => {
    let hit = false;
    for (const p of patterns) { p.lastIndex = 0; if (p.test(text)) hit = true; p.lastIndex = 0; }
    if (!hit) return null;
    for (const p of patterns) text = text.replace(p, workerData.replacement);
    return text;
  });
  parentPort.postMessage({ id, out });
});
`;

/** A pattern ran past its time on one batch: the outputs could not be checked. */
export class PatternTimeout extends Error {}

/**
 * The publisher's regular expressions, run off the worker's event loop in a thread of their own with a
 * time limit per batch of lines: JavaScript regexes backtrack, and one pattern such as `(a+)+$` on a
 * long line would otherwise hold the whole worker (every job's heartbeats) for hours. Past the limit
 * the thread is terminated and `match` rejects with PatternTimeout.
 */
export class PatternMatcher {
  private next = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly timeoutMs: number,
  ) {}

  static async start(patterns: string[], replacement: string, timeoutMs: number): Promise<PatternMatcher> {
    // a thread's own heap limit: a pattern cannot take the worker's memory either
    const worker = new Worker(THREAD, { eval: true, workerData: { patterns, replacement }, resourceLimits: { maxOldGenerationSizeMb: 256 } });
    await once(worker, 'online');
    return new PatternMatcher(worker, timeoutMs);
  }

  /** For each line: null when no pattern matches, else the line with every match replaced. */
  async match(lines: string[]): Promise<(string | null)[]> {
    const id = this.next++;
    let timer: NodeJS.Timeout | undefined;
    const reply = new Promise<(string | null)[]>((resolve, reject) => {
      const onMessage = (m: { id: number; out: (string | null)[] }): void => {
        if (m.id !== id) return;
        cleanup();
        resolve(m.out);
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.worker.off('message', onMessage).off('error', onError);
      };
      timer = setTimeout(() => {
        cleanup();
        void this.worker.terminate();
        reject(new PatternTimeout(`a pattern took longer than ${this.timeoutMs} ms on one batch of lines`));
      }, this.timeoutMs);
      this.worker.on('message', onMessage).on('error', onError);
    });
    this.worker.postMessage({ id, lines });
    return reply;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
