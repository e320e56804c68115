import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigureSpec } from '../../src/compute/backend';
import { defaultProgramsDir, ProcessBackend } from '../../src/compute/process/backend';
import { aheadId } from '../../src/compute/process/direct';
import { JobUids } from '../../src/compute/process/job-uids';
import { jobPaths, stepPaths } from '../../src/compute/process/layout';
import { defaultRuntimes } from '../../src/config';
import {
  algorithmLog,
  createTestBackend,
  hooks,
  silentLogger,
  newJobId,
  readAll,
  runAlgorithm,
  testEnvironment,
  testSandbox,
  type TestBackend,
} from '../helpers/process-backend';

const DID = 'did:op:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const DIR = DID.replace('did:op:', '');

let t: TestBackend;
const jobs: string[] = [];
const job = (): string => {
  const id = newJobId();
  jobs.push(id);
  return id;
};

beforeAll(() => {
  t = createTestBackend();
});
afterAll(async () => {
  for (const id of jobs) await t.backend.cleanup(id);
  t.dispose();
});

describe('process backend: a job end to end', () => {
  test('when a node algorithm writes an output, then it exits 0 and the publish step lists the output and the logs', async () => {
    const jobId = job();
    const code = `
      const fs = require('fs');
      fs.writeFileSync('/data/outputs/result.txt', 'hello from ' + process.env.ALGO);
      fs.mkdirSync('/data/outputs/sub');
      fs.symlinkSync('/etc/ld.so.cache', '/data/outputs/link');
      console.log('algorithm done');`;
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code });
    expect(algorithm).toMatchObject({ exitCode: 0, oomKilled: false, reason: '', reattached: false });

    const publish = await t.backend.runStep({ jobId, environment: testEnvironment(), step: 'publish' }, hooks());
    expect(publish).toMatchObject({ exitCode: 0, report: { files: [{ filename: 'result.txt', size: 42 }] } });

    const files = await t.backend.listPublished(jobId);
    expect(files.map((f) => [f.filename, f.type])).toEqual([
      ['result.txt', 'output'],
      ['algorithm.log', 'algorithmLog'],
      ['configure.log', 'configrationLog'],
      ['publish.log', 'publishLog'],
    ]);
    const result = files[0];
    expect(result?.size).toBe(42);
    expect(await readAll(result!.open())).toBe('hello from /data/transformations/algorithm');
    expect(await readAll(files[1]!.open())).toContain('algorithm done');
    // skipped entries are counted, never named: a name may carry data the output filter never saw
    expect(await readAll(files[3]!.open())).toContain('skipped 2 output(s) that are not regular files');
  });

  test('when the algorithm is python, then it runs with the host python and its output is kept', async () => {
    const jobId = job();
    const code = `import sys\nopen('/data/outputs/py.txt', 'w').write('python %d' % sys.version_info[0])\nprint('ok')`;
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code, image: 'python', entrypoint: 'python $ALGO' });
    expect(algorithm).toMatchObject({ exitCode: 0, reason: '' });
    expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', 'py.txt'), 'utf8')).toBe('python 3');
  });

  test('when the image is unknown, then checkContainer says which images run here', () => {
    expect(t.backend.checkContainer({ image: 'foo', tag: '1', entrypoint: 'foo $ALGO', checksum: 'sha256:0' })).toBe(
      'unknown image "foo"; this provider runs: node, python',
    );
    expect(t.backend.checkContainer({ image: 'docker.io/library/node:20-slim', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' })).toBeNull();
  });

  describe('configuration step', () => {
    let server: http.Server;
    let base: string;
    let slowRequests = 0;
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        if (req.url === '/SECRET-TOKEN/data.csv?key=SECRET-KEY' && req.headers['x-api-key'] === 'hdr-secret') res.end('a,b\n1,2\n');
        else if (req.url === '/SECRET-TOKEN/second.txt') res.end('second file');
        else if (req.url === '/slow') {
          slowRequests++;
          res.write('first bytes'); // and never more
        } else if (req.url === '/algo.js')
          res.end('require("fs").writeFileSync("/data/outputs/copy.csv", require("fs").readFileSync("/data/inputs/" + process.env.DIR + "/0"))');
        else {
          res.statusCode = 404;
          res.end('nope');
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });

    const configureSpec = (url: string): ConfigureSpec => ({
      datasets: [{ did: DID, ddo, files: [{ type: 'url', url, method: 'GET' }] }],
      algorithm: { did: null, ddo: null, rawcode: 'x' },
      maxInputBytes: 1e6,
      allowedPrivateHosts: [new URL(base).host],
    });
    const stepProcs = (jobId: string, step: string): string => {
      const f = `/sys/fs/cgroup/pids/c2d/${jobId}-${step}/cgroup.procs`;
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
    };
    const waitForSlowRequest = async (before: number): Promise<void> => {
      for (let i = 0; i < 200 && slowRequests === before; i++) await sleep(25);
      expect(slowRequests).toBeGreaterThan(before);
    };

    test('when the job is stopped while configure downloads, then the step ends as stopped within 2 s and none of its processes is left', async () => {
      const jobId = job();
      const before = slowRequests;
      const running = t.backend.runStep({ jobId, environment: testEnvironment(), step: 'configure', configure: configureSpec(`${base}/slow`) }, hooks());
      await waitForSlowRequest(before);
      const t0 = Date.now();
      await t.backend.stopJob(jobId);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(stepProcs(jobId, 'configure')).toBe('');
      expect(await running).toMatchObject({ exitCode: null, reason: 'stopped' });
      expect(fs.existsSync(path.join(t.dataDir, 'jobs', jobId, 'secret', 'configure.json'))).toBe(false);
    });

    test('when the configure activity is cancelled mid-download and retried, then the first run is killed and the retry runs configure again to success', async () => {
      const jobId = job();
      const environment = testEnvironment();
      const before = slowRequests;
      const ac = new AbortController();
      const first = t.backend.runStep(
        { jobId, environment, step: 'configure', configure: configureSpec(`${base}/slow`) },
        { heartbeat: () => undefined, signal: ac.signal },
      );
      await waitForSlowRequest(before);
      ac.abort();
      await expect(first).rejects.toMatchObject({ name: 'AbortError' });
      // retried at once, while the abandoned run is still being killed
      const again = await t.backend.runStep({ jobId, environment, step: 'configure', configure: configureSpec(`${base}/SECRET-TOKEN/second.txt`) }, hooks());
      expect(again).toMatchObject({ exitCode: 0, reason: '', reattached: true, report: { ok: true } });
      expect(stepProcs(jobId, 'configure')).toBe('');
      expect(slowRequests).toBe(before + 1);
      expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'inputs', DIR, '0'), 'utf8')).toBe('second file');
    });

    describe('started ahead (while the job waits for its slot)', () => {
      /** the id the fresh backend's sandbox started ahead for the job runs under */
      const w = (jobId: string): string => aheadId(fresh.backend.paths.workDir, jobId);
      /** processes of the cgroups a configure started ahead runs in */
      const aheadProcs = (jobId: string): string[] => {
        const procs = `/sys/fs/cgroup/pids/c2d/${w(jobId)}-configure/cgroup.procs`;
        return fs.existsSync(procs) ? fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean) : [];
      };
      const waitFor = async (f: () => boolean): Promise<boolean> => {
        for (let i = 0; i < 200 && !f(); i++) await sleep(25);
        return f();
      };
      let fresh: TestBackend;
      let uids: JobUids;
      const started: string[] = [];
      beforeEach(() => {
        fresh = createTestBackend();
        uids = new JobUids(testSandbox.uids, fresh.uidSlotsDir);
      });
      afterEach(async () => {
        for (const id of started.splice(0)) await fresh.backend.cleanup(id);
        fresh.dispose();
      });
      const prepare = (jobId: string): void => {
        started.push(jobId);
        fresh.backend.prepareConfigure({ jobId, environment: testEnvironment(), allowedPrivateHosts: [new URL(base).host] });
      };

      test('when the job configures, then its step takes the sandbox already waiting, downloads the inputs, and the job holds the uid it ran as', async () => {
        const jobId = newJobId();
        prepare(jobId);
        expect(await waitFor(() => aheadProcs(jobId).length > 0)).toBe(true);
        const waiting = aheadProcs(jobId);
        const uid = uids.held(w(jobId));
        expect(uid).not.toBeNull();
        expect(uids.held(jobId)).toBeNull();
        // it read nothing yet: no spec on disk, no input
        expect(fs.existsSync(path.join(fresh.dataDir, 'jobs', jobId, 'data', 'inputs', DIR))).toBe(false);
        const outcome = await fresh.backend.runStep(
          { jobId, environment: testEnvironment(), step: 'configure', configure: configureSpec(`${base}/SECRET-TOKEN/second.txt`) },
          hooks(),
        );
        expect(outcome).toMatchObject({ exitCode: 0, reason: '', reattached: false, report: { ok: true } });
        const input = path.join(fresh.dataDir, 'jobs', jobId, 'data', 'inputs', DIR, '0');
        expect(fs.readFileSync(input, 'utf8')).toBe('second file');
        expect(fs.statSync(input).uid).toBe(uid);
        // the uid is the job's now (its next steps run as it); nothing of the sandbox is left
        expect(uids.held(jobId)).toBe(uid);
        expect(uids.held(w(jobId))).toBeNull();
        expect(waiting.length).toBeGreaterThan(0);
        expect(aheadProcs(jobId)).toEqual([]);
        expect(fs.existsSync(`/sys/fs/cgroup/pids/c2d/${w(jobId)}-configure`)).toBe(false);
        const log = fs.readFileSync(path.join(fresh.dataDir, 'jobs', jobId, 'logs', 'configure.log'), 'utf8');
        expect(log).toContain('dataset 0 file 0: 11 bytes');
        expect(log).not.toContain('SECRET');
      });

      test.each([
        ['cleaned up before its configure step', (id: string) => fresh.backend.cleanup(id)],
        ['stopped while it waits for its slot', (id: string) => fresh.backend.stopJob(id)],
      ])('when the job is %s, then the sandbox ends and gives back its uid, cgroups and the workspace', async (_when, end) => {
        const jobId = newJobId();
        prepare(jobId);
        expect(await waitFor(() => aheadProcs(jobId).length > 0)).toBe(true);
        await end(jobId);
        expect(aheadProcs(jobId)).toEqual([]);
        expect(fs.existsSync(`/sys/fs/cgroup/pids/c2d/${w(jobId)}-configure`)).toBe(false);
        expect(uids.held(w(jobId))).toBeNull();
        expect(fs.existsSync(path.join(fresh.dataDir, 'jobs', jobId))).toBe(false);
      });

      test('when the job holds a uid on this host already (another worker of the host configured it), then the sandbox is not taken: the step runs its own, as that uid', async () => {
        const jobId = newJobId();
        prepare(jobId);
        expect(await waitFor(() => aheadProcs(jobId).length > 0)).toBe(true);
        const aheadUid = uids.held(w(jobId));
        const theirs = uids.claim(jobId, path.join(fresh.dataDir, 'elsewhere', jobId));
        expect(theirs).not.toBe(aheadUid);
        const outcome = await fresh.backend.runStep(
          { jobId, environment: testEnvironment(), step: 'configure', configure: configureSpec(`${base}/SECRET-TOKEN/second.txt`) },
          hooks(),
        );
        expect(outcome).toMatchObject({ exitCode: 0, reason: '', report: { ok: true } });
        expect(fs.statSync(path.join(fresh.dataDir, 'jobs', jobId, 'data', 'inputs', DIR, '0')).uid).toBe(theirs);
        expect(uids.held(jobId)).toBe(theirs);
        expect(uids.held(w(jobId))).toBeNull();
        expect(aheadProcs(jobId)).toEqual([]);
      });

      test('when four wait already, then the next waits its turn and starts as one of them ends; never for a job with a workspace here', async () => {
        const four = Array.from({ length: 4 }, () => newJobId());
        for (const id of four) prepare(id);
        for (const id of four) expect(await waitFor(() => aheadProcs(id).length > 0)).toBe(true);
        const fifth = newJobId();
        prepare(fifth);
        await sleep(300);
        expect(aheadProcs(fifth)).toEqual([]);
        expect(uids.held(w(fifth))).toBeNull();
        // one gone: the fifth's turn
        await fresh.backend.cleanup(four[0]!);
        expect(await waitFor(() => aheadProcs(fifth).length > 0)).toBe(true);
        // a job with a workspace here already (a later attempt): its turn passes, its step starts its own
        const configured = newJobId();
        fs.mkdirSync(path.join(fresh.dataDir, 'jobs', configured), { recursive: true });
        prepare(configured);
        await fresh.backend.cleanup(four[1]!);
        const next = newJobId();
        prepare(next);
        expect(await waitFor(() => aheadProcs(next).length > 0)).toBe(true);
        expect(aheadProcs(configured)).toEqual([]);
        expect(uids.held(w(configured))).toBeNull();
      });
    });

    test('when configure runs again after it finished (its activity retried after a restart), then the second run replaces the read-only inputs and succeeds', async () => {
      const jobId = job();
      const environment = testEnvironment();
      const spec: ConfigureSpec = { ...configureSpec(`${base}/SECRET-TOKEN/second.txt`), userdata: { algorithm: { a: 1 } } };
      const first = await t.backend.runStep({ jobId, environment, step: 'configure', configure: spec }, hooks());
      expect(first).toMatchObject({ exitCode: 0, report: { ok: true } });
      const input = path.join(t.dataDir, 'jobs', jobId, 'data', 'inputs', DIR, '0');
      expect(fs.statSync(input).mode & 0o777).toBe(0o444);
      const again = await t.backend.runStep({ jobId, environment, step: 'configure', configure: spec }, hooks());
      expect(again).toMatchObject({ exitCode: 0, reason: '', report: { ok: true } });
      expect(fs.readFileSync(input, 'utf8')).toBe('second file');
      expect(fs.statSync(input).mode & 0o777).toBe(0o444);
    });

    const ddo = { id: DID, metadata: { type: 'dataset', name: 'd' } };

    test('when datasets are on an HTTP server, then the algorithm reads them at /data/inputs/<dir>/<n> and the log holds no URL', async () => {
      const jobId = job();
      const code = `
        const fs = require('fs');
        const out = {
          f0: fs.readFileSync('/data/inputs/${DIR}/0', 'utf8'),
          f1: fs.readFileSync('/data/inputs/${DIR}/1', 'utf8'),
          ddo: JSON.parse(fs.readFileSync('/data/ddos/${DID}', 'utf8')).id,
          custom: JSON.parse(fs.readFileSync('/data/inputs/algoCustomData.json', 'utf8')),
          mode: (fs.statSync('/data/inputs/${DIR}/0').mode & 0o777).toString(8),
          dids: process.env.DIDS,
        };
        fs.writeFileSync('/data/outputs/seen.json', JSON.stringify(out));`;
      const environment = testEnvironment();
      const configure = await t.backend.runStep(
        {
          jobId,
          environment,
          step: 'configure',
          configure: {
            datasets: [
              {
                did: DID,
                ddo,
                files: [
                  { type: 'url', url: `${base}/SECRET-TOKEN/data.csv?key=SECRET-KEY`, method: 'GET', headers: { 'x-api-key': 'hdr-secret' } },
                  { type: 'url', url: `${base}/SECRET-TOKEN/second.txt`, method: 'GET' },
                ],
              },
            ],
            algorithm: { did: null, ddo: null, rawcode: code },
            algoCustomData: { threshold: 3 },
            maxInputBytes: 1024 * 1024,
            allowedPrivateHosts: [new URL(base).host],
          },
        },
        hooks(),
      );
      expect(configure).toMatchObject({ exitCode: 0, report: { ok: true } });
      expect(fs.existsSync(path.join(t.dataDir, 'jobs', jobId, 'secret', 'configure.json'))).toBe(false);
      const algorithm = await t.backend.runStep(
        {
          jobId,
          environment,
          step: 'algorithm',
          algorithm: {
            container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' },
            env: { DIDS: JSON.stringify([DID]) },
            allowNetwork: false,
          },
        },
        hooks(),
      );
      expect(algorithm.exitCode).toBe(0);
      const seen = JSON.parse(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', 'seen.json'), 'utf8'));
      expect(seen).toEqual({ f0: 'a,b\n1,2\n', f1: 'second file', ddo: DID, custom: { threshold: 3 }, mode: '444', dids: JSON.stringify([DID]) });
      const log = await readAll(t.backend.openLog(jobId, 'configure', { follow: false })!);
      expect(log).toContain('dataset 0 file 1: 11 bytes');
      for (const secret of ['SECRET', '127.0.0.1', base, 'hdr-secret']) expect(log).not.toContain(secret);
    });

    test('when the algorithm is a file on the server, then configure downloads it to /data/transformations/algorithm', async () => {
      const jobId = job();
      const environment = testEnvironment();
      const configure = await t.backend.runStep(
        {
          jobId,
          environment,
          step: 'configure',
          configure: {
            datasets: [{ did: DID, ddo, files: [{ type: 'url', url: `${base}/SECRET-TOKEN/second.txt`, method: 'GET' }] }],
            algorithm: { did: 'did:op:algo', ddo: { id: 'did:op:algo' }, files: [{ type: 'url', url: `${base}/algo.js`, method: 'GET' }] },
            maxInputBytes: 1024 * 1024,
            allowedPrivateHosts: [new URL(base).host],
          },
        },
        hooks(),
      );
      expect(configure).toMatchObject({ exitCode: 0, report: { ok: true } });
      const algorithm = await t.backend.runStep(
        {
          jobId,
          environment,
          step: 'algorithm',
          algorithm: { container: { image: 'node', tag: 'x', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: { DIR }, allowNetwork: false },
        },
        hooks(),
      );
      expect(algorithm.exitCode).toBe(0);
      expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', 'copy.csv'), 'utf8')).toBe('second file');
    });

    test.each([
      ['a dataset file answers 404', `/SECRET-TOKEN/missing`, 'dataset 0 file 1: HTTP 404'],
      ['a dataset file is on a closed port', 'closed', 'dataset 0 file 1: connection failed (ECONNREFUSED)'],
      ['a dataset file is not http', 'file:///etc/passwd', 'dataset 0 file 1: unsupported URL scheme (only http and https)'],
    ])('when %s, then configure exits 10 and reports which file failed without its URL', async (_name, where, reason) => {
      const jobId = job();
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/SECRET-TOKEN`;
      await new Promise<void>((r) => closed.close(() => r()));
      const url = where === 'closed' ? closedUrl : where.startsWith('/') ? `${base}${where}` : where;
      const outcome = await t.backend.runStep(
        {
          jobId,
          environment: testEnvironment(),
          step: 'configure',
          configure: {
            datasets: [
              {
                did: DID,
                ddo,
                files: [
                  { type: 'url', url: `${base}/SECRET-TOKEN/second.txt`, method: 'GET' },
                  { type: 'url', url, method: 'GET' },
                ],
              },
            ],
            algorithm: { did: null, ddo: null, rawcode: 'x' },
            maxInputBytes: 1024 * 1024,
            // the data server and the closed port: loopback is refused unless allowed (C2D_ALLOWED_PRIVATE_HOSTS)
            allowedPrivateHosts: [new URL(base).host, new URL(closedUrl).host],
          },
        },
        hooks(),
      );
      expect(outcome).toMatchObject({ exitCode: 10, report: { ok: false, failed: 'dataset', index: 0, reason } });
      const log = await readAll(t.backend.openLog(jobId, 'configure', { follow: false })!);
      expect(log).toContain(reason);
      for (const secret of ['SECRET', '127.0.0.1', '/etc/passwd']) expect(log).not.toContain(secret);
      expect(JSON.stringify(outcome)).not.toContain('SECRET');
    });

    test('when the inputs exceed maxInputBytes, then configure fails that dataset', async () => {
      const jobId = job();
      const outcome = await t.backend.runStep(
        {
          jobId,
          environment: testEnvironment(),
          step: 'configure',
          configure: {
            datasets: [{ did: DID, ddo, files: [{ type: 'url', url: `${base}/SECRET-TOKEN/second.txt`, method: 'GET' }] }],
            algorithm: { did: null, ddo: null, rawcode: 'x' },
            maxInputBytes: 5,
            allowedPrivateHosts: [new URL(base).host],
          },
        },
        hooks(),
      );
      expect(outcome).toMatchObject({
        exitCode: 10,
        report: { failed: 'dataset', index: 0, reason: 'dataset 0 file 0: inputs exceed the size limit of this environment' },
      });
    });
  });

  describe('publishing started ahead', () => {
    /** processes in the job's publish cgroup: its sandbox, waiting */
    const publishPids = (jobId: string): string[] => {
      const procs = `/sys/fs/cgroup/pids/c2d/${jobId}-publish/cgroup.procs`;
      return fs.existsSync(procs) ? fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean) : [];
    };
    const algorithmUp = async (jobId: string): Promise<void> => {
      for (let i = 0; i < 100 && !algorithmLog(t.dataDir, jobId).includes('up'); i++) await sleep(50);
      expect(algorithmLog(t.dataDir, jobId)).toContain('up');
    };
    const waitFor = async (f: () => boolean): Promise<boolean> => {
      for (let i = 0; i < 100 && !f(); i++) await sleep(30);
      return f();
    };

    test('when the algorithm runs, then its publish sandbox already waits, and publishing uses it with the budget decided at its turn', async () => {
      const jobId = job();
      const code = `console.log('up'); require('fs').writeFileSync('/data/outputs/a.txt', 'x'.repeat(10)); setTimeout(() => require('fs').writeFileSync('/data/outputs/b.txt', 'y'), 1500)`;
      const running = runAlgorithm(t.backend, jobId, { code });
      await algorithmUp(jobId);
      expect(await waitFor(() => publishPids(jobId).length > 0)).toBe(true);
      const waiting = publishPids(jobId);
      // it read nothing: the outputs it publishes are the ones there when its turn comes
      expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'logs', 'publish.log'), { flag: 'a+' }).toString()).toBe('');
      expect((await running).algorithm).toMatchObject({ exitCode: 0 });
      const publish = await t.backend.runStep({ jobId, environment: testEnvironment(), step: 'publish', withholdOutputs: false }, hooks());
      expect(publish).toMatchObject({ exitCode: 0, reason: '', reattached: false, report: { files: [{ filename: 'a.txt' }, { filename: 'b.txt' }] } });
      expect(waiting.length).toBeGreaterThan(0);
      expect(publishPids(jobId)).toEqual([]);
    });

    test('when publishing withholds the outputs, then the sandbox started ahead publishes none', async () => {
      const jobId = job();
      const running = runAlgorithm(t.backend, jobId, {
        code: `console.log('up'); require('fs').writeFileSync('/data/outputs/a.txt', 'x'); setTimeout(() => {}, 500)`,
      });
      await algorithmUp(jobId);
      expect(await waitFor(() => publishPids(jobId).length > 0)).toBe(true);
      await running;
      const publish = await t.backend.runStep({ jobId, environment: testEnvironment(), step: 'publish', withholdOutputs: true }, hooks());
      expect(publish).toMatchObject({ exitCode: 0, report: { files: [], withheld: true } });
      expect((await t.backend.listPublished(jobId)).filter((f) => f.type === 'output')).toEqual([]);
    });

    test('when the job is stopped, then the sandbox started ahead ends with it, and publishing starts its own', async () => {
      const jobId = job();
      const running = runAlgorithm(t.backend, jobId, {
        code: `console.log('up'); require('fs').writeFileSync('/data/outputs/a.txt', 'x'); setInterval(() => {}, 1000)`,
      });
      await algorithmUp(jobId);
      expect(await waitFor(() => publishPids(jobId).length > 0)).toBe(true);
      await t.backend.stopJob(jobId);
      expect(publishPids(jobId)).toEqual([]);
      expect((await running).algorithm).toMatchObject({ reason: 'stopped' });
      const publish = await t.backend.runStep({ jobId, environment: testEnvironment(), step: 'publish' }, hooks());
      expect(publish).toMatchObject({ exitCode: 0, reason: '', report: { files: [{ filename: 'a.txt' }] } });
      // the log holds the run that published, nothing of the one that was not wanted
      const log = fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'logs', 'publish.log'), 'utf8');
      expect(log).toBe('collected "a.txt" (1 bytes)\npublished 1 file(s)\n');
    });

    test('when a job is cleaned up without publishing, then the sandbox started ahead is gone too', async () => {
      const jobId = job();
      const running = runAlgorithm(t.backend, jobId, { code: `console.log('up'); setInterval(() => {}, 1000)` });
      await algorithmUp(jobId);
      expect(await waitFor(() => publishPids(jobId).length > 0)).toBe(true);
      await t.backend.cleanup(jobId);
      await running;
      expect(publishPids(jobId)).toEqual([]);
      expect(fs.existsSync(`/sys/fs/cgroup/pids/c2d/${jobId}-publish`)).toBe(false);
    });
  });

  describe('the spare supervisor', () => {
    /** this process's children waiting as spare supervisors (node supervisor.js --wait), of every backend of this file */
    const spares = (): number[] =>
      fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .filter((pid) => {
          try {
            const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
            const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            if (state === 'Z') return false; // ended, not reaped yet
            const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
            return Number(ppid) === process.pid && argv.some((a) => a.endsWith('supervisor.js')) && argv.includes('--wait');
          } catch {
            return false; // it ended meanwhile
          }
        })
        .map(Number);
    const supervisorOf = (backend: TestBackend, jobId: string): number | undefined =>
      (JSON.parse(fs.readFileSync(stepPaths(jobPaths(backend.dataDir, jobId), 'algorithm').launch, 'utf8')) as { supervisorPid?: number }).supervisorPid;
    /** the spares started since `before` (the other backends of this file run nothing meanwhile) */
    const newSpares = async (before: number[]): Promise<number[]> => {
      const started = (): number[] => spares().filter((pid) => !before.includes(pid));
      for (let i = 0; i < 100 && started().length === 0; i++) await sleep(20);
      return started();
    };

    test('when a job configures with none ready, then one starts beside it and the algorithm runs under it; once it ran, it waits for the next job, which runs under it too', async () => {
      const fresh = createTestBackend();
      const first = newJobId();
      const second = newJobId();
      try {
        // the other backends' spares, once none is between its fork and its exec (its command line still this process's)
        let before = spares();
        for (let i = 0; i < 20; i++) {
          await sleep(100);
          const now = spares();
          if (now.join() === before.join()) break;
          before = now;
        }
        const running = runAlgorithm(fresh.backend, first, { code: `console.log('ran')` });
        // started by the configure step, before the algorithm asks for it
        const [spare, ...more] = await newSpares(before);
        expect(spare).toBeDefined();
        expect(more).toEqual([]);
        expect((await running).algorithm).toMatchObject({ exitCode: 0, reason: '' });
        expect(supervisorOf(fresh, first)).toBe(spare);
        // none started at the algorithm's end (its Node start-up would share the cores with the job's publishing)
        expect(spares().filter((pid) => !before.includes(pid) && pid !== spare)).toEqual([]);
        await fresh.backend.cleanup(first);
        // the one that ran the first job is ready again: the cleanup started none, and the second job runs under it
        await sleep(300);
        expect(spares().filter((pid) => !before.includes(pid))).toEqual([spare]);
        expect((await runAlgorithm(fresh.backend, second, { code: `console.log('ran')` })).algorithm).toMatchObject({ exitCode: 0 });
        expect(supervisorOf(fresh, second)).toBe(spare);
        expect(algorithmLog(fresh.dataDir, second)).toBe('ran\n');
        expect(spares().filter((pid) => !before.includes(pid))).toEqual([spare]);
      } finally {
        await fresh.backend.cleanup(first);
        await fresh.backend.cleanup(second);
        fresh.dispose();
      }
    });

    test("when an algorithm runs under a supervisor that waits for the worker's next step, then it holds neither of the supervisor's channels to the worker: it cannot tell the worker that the supervisor is free", async () => {
      const jobId = newJobId();
      try {
        // every descriptor the algorithm holds, and where it leads
        const code = `const fs = require('fs'); for (const fd of fs.readdirSync('/proc/self/fd')) { try { console.log(fs.readlinkSync('/proc/self/fd/' + fd)); } catch {} }`;
        expect((await runAlgorithm(t.backend, jobId, { code })).algorithm).toMatchObject({ exitCode: 0, reason: '' });
        const held = algorithmLog(t.dataDir, jobId).trim().split('\n');
        const supervisor = supervisorOf(t, jobId)!;
        // it waits for the next step, on the pipes it reads its specs from and says `ready` on
        const [stdin, stdout] = [0, 1].map((fd) => fs.readlinkSync(`/proc/${supervisor}/fd/${fd}`));
        // (node's 'pipe' stdio: a socket pair)
        expect(stdin).toMatch(/^socket:/);
        expect(stdout).toMatch(/^socket:/);
        expect(held.length).toBeGreaterThan(2);
        expect(held).not.toContain(stdin);
        expect(held).not.toContain(stdout);
      } finally {
        await t.backend.cleanup(jobId);
      }
    });
  });

  test('when the job is stopped while the algorithm runs, then its processes are gone within 2 s and the log so far is kept', async () => {
    const jobId = job();
    const code = `require('fs').writeFileSync('/data/outputs/partial.txt', 'so far'); console.log('started'); setInterval(() => {}, 1000);`;
    const running = runAlgorithm(t.backend, jobId, { code });
    for (let i = 0; i < 100 && !algorithmLog(t.dataDir, jobId).includes('started'); i++) await sleep(50);
    expect(algorithmLog(t.dataDir, jobId)).toContain('started');
    const before = Date.now();
    await t.backend.stopJob(jobId);
    expect(Date.now() - before).toBeLessThan(2000);
    expect(
      fs.existsSync(`/sys/fs/cgroup/pids/c2d/${jobId}-algorithm`) ? fs.readFileSync(`/sys/fs/cgroup/pids/c2d/${jobId}-algorithm/cgroup.procs`, 'utf8') : '',
    ).toBe('');
    const { algorithm } = await running;
    expect(algorithm).toMatchObject({ exitCode: null, reason: 'stopped' });
    expect(algorithmLog(t.dataDir, jobId)).toContain('started');
    const publish = await t.backend.runStep({ jobId, environment: testEnvironment(), step: 'publish' }, hooks());
    expect(publish).toMatchObject({ exitCode: 0, reason: '' }); // but what it wrote so far is still published
    expect((await t.backend.listPublished(jobId)).map((f) => f.filename)).toContain('partial.txt');
  });

  test('when a job is stopped before its algorithm starts, then the algorithm never runs', async () => {
    const jobId = job();
    const environment = testEnvironment();
    const configure = await t.backend.runStep(
      {
        jobId,
        environment,
        step: 'configure',
        configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: "require('fs').writeFileSync('/data/outputs/ran', '1')" }, maxInputBytes: 1024 },
      },
      hooks(),
    );
    expect(configure.exitCode).toBe(0);
    await t.backend.stopJob(jobId);
    const algorithm = await t.backend.runStep(
      {
        jobId,
        environment,
        step: 'algorithm',
        algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
      },
      hooks(),
    );
    expect(algorithm).toMatchObject({ exitCode: null, reason: 'stopped' });
    expect(algorithmLog(t.dataDir, jobId)).toBe('');
    const publish = await t.backend.runStep({ jobId, environment, step: 'publish' }, hooks());
    expect(publish.exitCode).toBe(0);
    expect((await t.backend.listPublished(jobId)).filter((f) => f.type === 'output')).toEqual([]);
  });

  test('when the worker stops waiting and a retried activity calls runStep again, then it re-attaches and the algorithm ran once', async () => {
    const jobId = job();
    const code = `
      require('fs').appendFileSync('/data/outputs/runs.txt', 'run\\n');
      console.log('tick 1');
      setTimeout(() => { console.log('tick 2'); }, 1500);`;
    const environment = testEnvironment();
    const req = {
      jobId,
      environment,
      step: 'algorithm' as const,
      algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
    };
    const configure = await t.backend.runStep(
      { jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } },
      hooks(),
    );
    expect(configure.exitCode).toBe(0);
    const ac = new AbortController();
    const beats: unknown[] = [];
    const first = t.backend.runStep(req, { heartbeat: (d) => beats.push(d), signal: ac.signal });
    for (let i = 0; i < 100 && !algorithmLog(t.dataDir, jobId).includes('tick 1'); i++) await sleep(30);
    ac.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    expect(beats.length).toBeGreaterThan(0);

    const live = t.backend.openLog(jobId, 'algorithm', { follow: true })!;
    const again = await t.backend.runStep(req, hooks());
    expect(again).toMatchObject({ exitCode: 0, reason: '', reattached: true });
    expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', 'runs.txt'), 'utf8')).toBe('run\n');
    expect(await readAll(live)).toBe('tick 1\ntick 2\n');

    const third = await t.backend.runStep(req, hooks());
    expect(third).toMatchObject({ exitCode: 0, reattached: true });
  });

  test('when the log of a configured job is followed before its algorithm starts, then it shows the algorithm output from the start; after a stop instead it ends empty', async () => {
    const environment = testEnvironment();
    const configured = async (code: string): Promise<string> => {
      const jobId = job();
      const configure = await t.backend.runStep(
        { jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } },
        hooks(),
      );
      expect(configure).toMatchObject({ exitCode: 0, reason: '' });
      return jobId;
    };
    const a = await configured("console.log('first line')");
    expect(t.backend.openLog(a, 'algorithm', { follow: false })).toBeNull();
    const live = t.backend.openLog(a, 'algorithm', { follow: true })!;
    expect(live).not.toBeNull();
    const ran = await t.backend.runStep(
      {
        jobId: a,
        environment,
        step: 'algorithm',
        algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
      },
      hooks(),
    );
    expect(ran.exitCode).toBe(0);
    expect(await readAll(live)).toBe('first line\n');

    const b = await configured("console.log('never')");
    const waiting = t.backend.openLog(b, 'algorithm', { follow: true })!;
    await t.backend.stopJob(b);
    expect(await readAll(waiting)).toBe('');
  });

  test('when a job is cleaned up while a step runs, then the step is killed and the waiting call ends as stopped', async () => {
    const jobId = job();
    const waiting = runAlgorithm(t.backend, jobId, { code: `console.log('up'); setInterval(() => {}, 1000)` });
    for (let i = 0; i < 100 && !algorithmLog(t.dataDir, jobId).includes('up'); i++) await sleep(50);
    await t.backend.cleanup(jobId);
    const { algorithm } = await waiting;
    expect(algorithm).toMatchObject({ exitCode: null, reason: 'stopped' });
    expect(fs.existsSync(path.join(t.dataDir, 'jobs', jobId))).toBe(false);
  });

  test('when a job is cleaned up, then its workspace and cgroups are gone and a second cleanup is harmless', async () => {
    const jobId = job();
    await runAlgorithm(t.backend, jobId, { code: 'console.log(1)' });
    await t.backend.cleanup(jobId);
    expect(fs.existsSync(path.join(t.dataDir, 'jobs', jobId))).toBe(false);
    for (const c of ['memory', 'cpu', 'pids']) expect(fs.existsSync(`/sys/fs/cgroup/${c}/c2d/${jobId}-algorithm`)).toBe(false);
    await t.backend.cleanup(jobId);
    expect(t.backend.openLog(jobId, 'algorithm', { follow: false })).toBeNull();
    expect(await t.backend.listPublished(jobId)).toEqual([]);
  });

  test('when the data dir is our own 0700 dir (as the settings create it, for the provider key), then it is made traversable and job workspaces stay in it', () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-private-'));
    let stageDir: string | undefined;
    try {
      fs.chmodSync(parent, 0o711);
      fs.mkdirSync(path.join(parent, 'data'), { mode: 0o700 });
      const backend = new ProcessBackend({
        dataDir: path.join(parent, 'data'),
        runtimes: defaultRuntimes(process.execPath),
        sandbox: testSandbox,
        uidSlotsDir: t.uidSlotsDir,
        programsDir: defaultProgramsDir(),
        logger: silentLogger,
      });
      stageDir = backend.paths.stageDir; // the programs, when this clone is out of the sandbox uid's reach
      expect(backend.paths.workDir).toBe(path.join(parent, 'data'));
      if (process.getuid?.() === 0) expect(fs.statSync(path.join(parent, 'data')).mode & 0o777).toBe(0o701);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
      if (stageDir) fs.rmSync(stageDir, { recursive: true, force: true });
    }
  });

  test('when cgroups cannot be used, then construction fails with a clear error', () => {
    const make = (): ProcessBackend =>
      new ProcessBackend({
        dataDir: t.dataDir,
        runtimes: defaultRuntimes(process.execPath),
        sandbox: { ...testSandbox, cgroupRoot: '/nonexistent' },
        programsDir: defaultProgramsDir(),
        logger: silentLogger,
      });
    expect(make).toThrow(/no usable cgroup hierarchy under \/nonexistent/);
  });
});
