import fs from 'node:fs';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';
import type { DockerEnvironmentInput } from '../../src/domain/environment';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { describeAsRoot } from '../helpers/privilege';
import { testState } from '../helpers/state';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText, waitFor } from '../integration/helpers';

/** Whole jobs on the docker backend: API, Temporal, worker and real containers on our Docker Engine. */
describeAsRoot('a Docker engine of its own, started by tools/ensure-docker.sh')('jobs on the docker backend', () => {
  let engine: TestEngine;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;

  const env = (id: string, extra: Partial<DockerEnvironmentInput> = {}): DockerEnvironmentInput => ({
    id,
    backend: 'docker',
    maxJobs: 3,
    ramGB: 0.25,
    maxJobDuration: 120,
    algorithmNetwork: false,
    ...extra,
    docker: {
      socketPath: engine.socketPath,
      images: { configure: engine.images.configure, publish: engine.images.publish },
      allowedImages: ['127.0.0.1:5000/*'],
      maxProcesses: 32,
      ...extra.docker,
    },
  });

  beforeAll(async () => {
    engine = startTestEngine();
    data = await serveFiles({ 'numbers.csv': '1\n2\n3\n4\n' });
    stack = await startStack({
      environments: [env('dock'), env('dock-short', { maxJobDuration: 3 }), env('dock-pull', { docker: { pullPolicy: 'always' } })],
    });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'numbers', urls: [data.url('numbers.csv')], compute: { allowRawAlgorithm: true } });
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    engine?.stop();
  });

  const python = (rawcode: string, container: { image?: string; checksum?: string; entrypoint?: string } = {}) => {
    const [image, checksum] = engine.images.pythonNumpy.split('@') as [string, string];
    return { meta: { rawcode, container: { entrypoint: 'python3 $ALGO', image, tag: '', checksum, ...container } } };
  };
  const start = (environment: string, algorithm: ReturnType<typeof python>) =>
    client.startJob({ environment, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
  const run = async (environment: string, algorithm: ReturnType<typeof python>) =>
    client.waitForJob((await start(environment, algorithm)).jobId, { timeoutMs: 90_000 });

  it('when a Python algorithm that imports numpy runs, then the job reaches 70 with its output and nothing of it is left on the engine', async () => {
    const done = await run(
      'dock',
      python(`
import numpy as np, os, glob
x = np.loadtxt(glob.glob('/data/inputs/*/0')[0])
open('/data/outputs/result.txt', 'w').write(f"sum={x.sum():.0f} mean={x.mean():.2f} uid={os.getuid()}")
print("computed with numpy", np.__version__)
`),
    );
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'result.txt')).toBe('sum=10 mean=2.50 uid=65534');
    expect(await resultText(client, done, 'algorithm.log')).toContain('computed with numpy');
    await waitFor('the job containers to be removed', async () => (await engine.jobContainers()).filter((n) => n.includes(done.jobId)).length === 0);
  });

  it('when the algorithm tries its inputs, the root filesystem, privileges and a fork bomb, then all are contained', async () => {
    const done = await run(
      'dock',
      python(`
import os, json, errno, glob, time
st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
def attempt(f):
    try:
        f(); return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = {
    'uid': os.getuid(), 'capEff': st['CapEff'].strip(), 'noNewPrivs': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(),
    'writeInput': attempt(lambda: open(glob.glob('/data/inputs/*/0')[0], 'a').write('x')),
    'newInput': attempt(lambda: open('/data/inputs/new', 'w')),
    'writeRoot': attempt(lambda: open('/evil', 'w')),
    'writeUsr': attempt(lambda: open('/usr/evil', 'w')),
    'tmp': attempt(lambda: open('/tmp/scratch', 'w').write('ok')),
    'secrets': attempt(lambda: os.listdir('/run/c2d')),
    'env': sorted(os.environ),
}
kids, forks = [], 'ok'
for i in range(100):
    try:
        pid = os.fork()
    except OSError as e:
        forks = errno.errorcode[e.errno]; break
    if pid == 0:
        time.sleep(5); os._exit(0)
    kids.append(pid)
for k in kids: os.kill(k, 9)
out['forks'] = forks
open('/data/outputs/report.json', 'w').write(json.dumps(out))
`),
    );
    expect(done.status).toBe(70);
    const report = JSON.parse(await resultText(client, done, 'report.json')) as Record<string, unknown>;
    expect(report).toMatchObject({
      uid: 65534,
      capEff: '0000000000000000',
      noNewPrivs: '1',
      seccomp: '2',
      newInput: 'EROFS',
      writeRoot: 'EROFS',
      writeUsr: 'EROFS',
      tmp: 'ok',
      secrets: 'ENOENT',
      forks: 'EAGAIN',
    });
    expect(['EROFS', 'EACCES']).toContain(report.writeInput);
    expect(report.env).not.toEqual(expect.arrayContaining([expect.stringMatching(/^C2D_|KEY|TEMPORAL/)]));
  });

  it('when the environment pulls always, then the pull and its progress are in the algorithm log, before its output', async () => {
    const done = await run('dock-pull', python('print("after the pull")'));
    expect(done.status).toBe(70);
    const log = await resultText(client, done, 'algorithm.log');
    const [image] = engine.images.pythonNumpy.split('@') as [string];
    expect(log).toMatch(
      new RegExp(`^pulling image ${image.replace(/[.]/g, '\\.')}@sha256:[0-9a-f]{64}\n(.*\n)*pulled image .* in [0-9.]+ s\nafter the pull\n$`),
    );
  });

  it('when the algorithm exits non-zero, then the job ends 41 with its exit code', async () => {
    const done = await run('dock', python('import sys; print("bad input"); sys.exit(3)'));
    expect(done.status).toBe(41);
    expect(done.terminationDetails).toMatchObject({ exitCode: 3, oomKilled: false });
  });

  it('when the algorithm exhausts its memory, then it is OOM-killed and reported as such', async () => {
    const done = await run('dock', python('import numpy as np\nx = np.ones((1024, 1024, 1024), dtype=np.uint8)\nprint(x.sum())'));
    expect(done.status).toBe(41);
    expect(done.terminationDetails).toMatchObject({ oomKilled: true });
  });

  it('when the algorithm dials the test server, the API and Temporal on the host, then nothing answers: it has no network but lo', async () => {
    const targets = [new URL(data.url('x')).port, new URL(stack.baseUrl).port, testState().temporalAddress.split(':')[1]];
    const done = await run(
      'dock',
      python(`
import socket, json, os
def dial(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, int(port))); return 'connected'
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()
out = {'dials': [dial('127.0.0.1', p) for p in ${JSON.stringify(targets)}] + [dial('1.1.1.1', 80)], 'interfaces': sorted(os.listdir('/sys/class/net'))}
open('/data/outputs/net.json', 'w').write(json.dumps(out))
`),
    );
    expect(done.status).toBe(70);
    const report = JSON.parse(await resultText(client, done, 'net.json')) as { dials: string[]; interfaces: string[] };
    expect(report.interfaces).toEqual(['lo']);
    expect(report.dials.slice(0, 3)).toEqual(['ConnectionRefusedError', 'ConnectionRefusedError', 'ConnectionRefusedError']);
    expect(report.dials[3]).toBe('OSError'); // network unreachable
  });

  it('when the algorithm runs past maxJobDuration, then it is killed at the deadline and nothing of it keeps running', async () => {
    const t0 = Date.now();
    const done = await run('dock-short', python('import time\nwhile True: time.sleep(1)'));
    expect({ status: done.status, stopreq: done.stopreq, terminationDetails: done.terminationDetails }).toMatchObject({
      status: 70,
      stopreq: 2, // the deadline
      terminationDetails: { reason: 'exceeded maxJobDuration' },
    });
    expect(Date.now() - t0).toBeLessThan(60_000);
    await waitFor('the job containers to be removed', async () => (await engine.jobContainers()).filter((n) => n.includes(done.jobId)).length === 0);
  });

  it('when the consumer stops a running job, then its algorithm container is killed and the job ends stopped', async () => {
    const { jobId } = await start('dock', python('import time\nprint("started", flush=True)\nwhile True: time.sleep(1)'));
    await waitFor(
      'the algorithm to run',
      async () => (await engine.jobContainers()).includes(`c2d-${jobId}-algorithm`) && (await client.job(jobId))?.status === 40,
      60_000,
      200,
    );
    await client.stopJob(jobId);
    const done = await client.waitForJob(jobId, { timeoutMs: 60_000 });
    expect(done.stopreq).toBeGreaterThan(0);
    expect(done.terminationDetails).toMatchObject({ reason: expect.stringContaining('stopped') });
    await waitFor('the job containers to be removed', async () => (await engine.jobContainers()).filter((n) => n.includes(jobId)).length === 0);
  });

  it('when the worker is killed with SIGKILL mid-algorithm, then a new worker re-attaches to the container: the job completes and the algorithm ran once', async () => {
    const { jobId } = await start(
      'dock',
      python(`
import time
open('/data/outputs/runs.txt', 'a').write('run\\n')
print('started', flush=True)
time.sleep(6)
open('/data/outputs/result.txt', 'w').write('done')
print('finished', flush=True)
`),
    );
    const name = `c2d-${jobId}-algorithm`;
    await waitFor(
      'the algorithm to run',
      async () =>
        (
          await engine.docker
            .getContainer(name)
            .inspect()
            .catch(() => null)
        )?.State.Running,
      60_000,
      100,
    );
    const exited = new Promise((r) => stack.worker.once('exit', r));
    stack.worker.kill('SIGKILL');
    await exited;
    stack.startWorker();
    const done = await client.waitForJob(jobId, { timeoutMs: 120_000 });
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'runs.txt')).toBe('run\n');
    expect(await resultText(client, done, 'result.txt')).toBe('done');
    const log = await resultText(client, done, 'algorithm.log');
    expect(log.match(/started/g)).toHaveLength(1);
    expect(log).toContain('finished');
    await waitFor('the job containers to be removed', async () => (await engine.jobContainers()).filter((n) => n.includes(jobId)).length === 0);
  });

  it('when the image does not exist, then the job ends 32 quickly, naming the image', async () => {
    const t0 = Date.now();
    const done = await run('dock', python('print(1)', { image: '127.0.0.1:5000/no-such-image', checksum: `sha256:${'1'.repeat(64)}` }));
    expect(done.status).toBe(32);
    expect(done.terminationDetails).toMatchObject({ reason: expect.stringContaining('127.0.0.1:5000/no-such-image') });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('when container.checksum is not the image manifest digest, then the image is refused: 400 when the image names another digest, else 32', async () => {
    const [image, real] = engine.images.pythonNumpy.split('@') as [string, string];
    const other = `sha256:${'0'.repeat(64)}`;
    await expect(start('dock', python('print(1)', { image: `${image}@${real}`, checksum: other }))).rejects.toMatchObject({ status: 400 });
    await expect(start('dock', python('print(1)', { checksum: 'md5:abc' }))).rejects.toMatchObject({ status: 400 });
    const done = await run('dock', python('print(1)', { checksum: other }));
    expect(done.status).toBe(32);
    expect(done.terminationDetails).toMatchObject({ reason: expect.stringContaining(other) });
  });

  it('when the image is not allowed in the environment, then the job is refused at start', async () => {
    await expect(start('dock', python('print(1)', { image: 'docker.io/library/python', checksum: '' }))).rejects.toMatchObject({ status: 400 });
  });

  it('when every job has ended, then no container and no job directory of them is left', async () => {
    await waitFor('every job container to be removed', async () => (await engine.jobContainers()).length === 0);
    const jobs = path.join(stack.dataDir, 'docker-jobs');
    await waitFor('every job directory to be removed', () => !fs.existsSync(jobs) || fs.readdirSync(jobs).length === 0);
  });
});
