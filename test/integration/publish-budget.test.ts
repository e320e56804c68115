import fs from 'node:fs';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { describeOnBackends, type SuiteBackend } from '../helpers/backends';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText } from './helpers';

const LIMIT = 1024 * 1024;
const MAX_FILES = 100;
const OVER_LIMIT = 'algorithm wrote more output than the environment allows';

/** Bytes the store holds for the job on disk (blocks, like the budget), every file once. */
function storedBytes(dataDir: string, jobId: string): number {
  let total = 0;
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const st = fs.lstatSync(p);
      total += Math.max(st.size, st.blocks * 512);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(path.join(dataDir, 'results', jobId));
  return total;
}

const outputsOf = (job: JobView) => (Array.isArray(job.results) ? job.results.filter((r) => r.type === 'output') : []);

/**
 * An algorithm that tries to fill the provider's disk, over HTTP through the whole stack: each attempt ends at the environment's budget,
 * on the process sandbox and on real containers of the docker backend alike (the same jobs, the same assertions).
 */
describeOnBackends(
  {},
  (name) => `the publishing budget, end to end, on the ${name} backend`,
  (backend: SuiteBackend) => {
    let stack: Stack;
    let data: Awaited<ReturnType<typeof serveFiles>>;
    let client: ProviderClient;
    let dataset: string;

    beforeAll(async () => {
      await backend.setup();
      data = await serveFiles({ 'rows.csv': 'a,b\n1,2\n' });
      stack = await startStack({
        environments: [
          backend.environment({ id: 'budget', maxJobs: 4, ramGB: 0.5, maxJobDuration: 60, maxOutputBytes: LIMIT, maxOutputFiles: MAX_FILES }),
          backend.environment({
            id: 'filtered',
            maxJobs: 2,
            ramGB: 0.5,
            maxJobDuration: 60,
            plugins: [{ name: 'outputFilter', options: { patterns: ['SECRET-\\d+'] } }],
          }),
        ],
      });
      client = stack.consumer();
      dataset = await stack.publish(client, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    }, 600_000);

    afterAll(async () => {
      await stack?.stop();
      data?.close();
      backend.teardown();
    });

    const run = async (code: string, entrypoint?: string, environment = 'budget'): Promise<JobView> => {
      const algorithm = backend.nodeRaw(code);
      if (entrypoint) algorithm.meta.container.entrypoint = entrypoint;
      const { jobId } = await client.startJob({ environment, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
      return client.waitForJob(jobId, { timeoutMs: 60_000 });
    };

    const expectCutOff = (job: JobView): void => {
      expect({ status: job.status, reason: job.terminationDetails?.reason }).toEqual({ status: 42, reason: OVER_LIMIT });
      expect(outputsOf(job)).toEqual([]);
      // three step logs at most, each within the limit; no output at all
      expect(storedBytes(stack.dataDir, job.jobId)).toBeLessThanOrEqual(3 * LIMIT + 64 * 1024);
    };

    it('when the algorithm floods /data/outputs with hard links to one file, then it ends 42 and nothing is published', async () => {
      const job = await run(`
      const fs = require('fs');
      fs.writeFileSync('/data/outputs/big', Buffer.alloc(512 * 1024, 1));
      for (let i = 0; i < 5000; i++) fs.linkSync('/data/outputs/big', '/data/outputs/link' + i);`);
      expectCutOff(job);
    });

    it('when a few outputs are hard links, then the job finishes and none of the linked names is published or named', async () => {
      const job = await run(`
      const fs = require('fs');
      fs.writeFileSync('/data/outputs/big', Buffer.alloc(512 * 1024, 1));
      for (let i = 0; i < 3; i++) fs.linkSync('/data/outputs/big', '/data/outputs/link' + i);
      fs.writeFileSync('/data/outputs/ok.txt', 'fine');`);
      expect(job.status).toBe(70);
      expect(outputsOf(job).map((r) => r.filename)).toEqual(['ok.txt']);
      const log = await resultText(client, job, 'publish.log');
      expect(log).toContain('skipped 4 hard-linked output(s)');
      expect(log).not.toContain('link0');
    });

    it('when the algorithm writes sparse files whose copies would pass the limit, then it ends 42 and nothing is published', async () => {
      // each costs almost nothing here, but its full length once published
      const job = await run(`
      const fs = require('fs');
      for (let i = 0; i < 4; i++) { const fd = fs.openSync('/data/outputs/sparse' + i, 'w'); fs.ftruncateSync(fd, 600 * 1024); fs.closeSync(fd); }`);
      expectCutOff(job);
    });

    it('when the algorithm preallocates space past the end of a file (length 0), then the blocks count and it ends 42', async () => {
      const job = await run(
        '// fallocate is the algorithm',
        ': > /data/outputs/empty-looking && fallocate --keep-size --length 8MiB /data/outputs/empty-looking && sleep 2',
      );
      expectCutOff(job);
    });

    it('when the algorithm writes many small files, then it ends 42 at the file cap and nothing is published', async () => {
      const job = await run(`
      const fs = require('fs');
      for (let i = 0; i < 2000; i++) fs.writeFileSync('/data/outputs/f' + i, 'x');`);
      expectCutOff(job);
    });

    it('when the algorithm writes a huge file into /data/logs, then that counts too and it ends 42', async () => {
      const job = await run(`
      const fs = require('fs');
      const chunk = Buffer.alloc(256 * 1024, 0x41);
      for (let i = 0; i < 16; i++) fs.appendFileSync('/data/logs/huge.log', chunk);`);
      expectCutOff(job);
    });

    it('when the algorithm prints a huge log, then its algorithm.log stops at the limit, saying so', async () => {
      const job = await run(`
      const line = 'y'.repeat(1023) + '\\n';
      for (let i = 0; i < 4096; i++) process.stdout.write(line);`);
      expect(job.status).toBe(70);
      const log = Array.isArray(job.results) ? job.results.find((r) => r.type === 'algorithmLog') : undefined;
      expect(log?.filesize).toBeGreaterThan(0);
      // the limit, then one line saying so
      expect(log?.filesize).toBe(LIMIT + `\n[log truncated at ${LIMIT} bytes]\n`.length);
    });

    it('when the outputs fit, then they are published as before', async () => {
      const job = await run(`require('fs').writeFileSync('/data/outputs/result.txt', 'x'.repeat(300 * 1024))`);
      expect(job.status).toBe(70);
      expect(outputsOf(job)).toEqual([expect.objectContaining({ filename: 'result.txt', filesize: 300 * 1024 })]);
    });

    it('when an output file name carries what the output filter refuses, then no output is published and publish.log names none of them', async () => {
      const job = await run(
        `const fs = require('fs'); fs.writeFileSync('/data/outputs/SECRET-4242.txt', 'harmless'); fs.writeFileSync('/data/outputs/fine.txt', 'ok');`,
        undefined,
        'filtered',
      );
      expect({ status: job.status, reason: job.terminationDetails?.reason }).toEqual({
        status: 62,
        reason: 'plugin outputFilter (afterAlgorithm): 1 output file name offends like a line would; no output was published',
      });
      expect(outputsOf(job)).toEqual([]);
      const log = await resultText(client, job, 'publish.log');
      expect(log).toContain('outputs withheld');
      expect(log).not.toMatch(/SECRET-4242|fine\.txt/);
    });
  },
);
