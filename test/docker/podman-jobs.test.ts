import type { ProviderClient } from '../../src/client/provider-client';
import type { DockerEnvironmentInput } from '../../src/domain/environment';
import { startLocalPodman } from '../../tools/docker-engine';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { describeAsRoot } from '../helpers/privilege';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText, waitFor } from '../integration/helpers';

/** The same backend on Podman's Docker-compatible service (Podman 4.3): images from the loopback registry by digest. */
describeAsRoot('a Docker engine and a Podman service of its own, started by tools/ensure-docker.sh')('jobs on the docker backend over Podman', () => {
  let engine: TestEngine;
  let podman: ReturnType<typeof startLocalPodman>;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;

  beforeAll(async () => {
    engine = startTestEngine(); // the registry and our images
    podman = startLocalPodman();
    const env: DockerEnvironmentInput = {
      id: 'podman',
      backend: 'docker',
      maxJobs: 2,
      ramGB: 0.25,
      maxJobDuration: 120,
      algorithmNetwork: false,
      docker: {
        socketPath: podman.socketPath,
        images: { configure: engine.images.configure, publish: engine.images.publish },
        allowedImages: ['127.0.0.1:5000/*'],
      },
    };
    data = await serveFiles({ 'numbers.csv': '1\n2\n3\n4\n' });
    stack = await startStack({ environments: [env] });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'numbers', urls: [data.url('numbers.csv')], compute: { allowRawAlgorithm: true } });
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    podman?.stop();
    engine?.stop();
  });

  const run = async (rawcode: string) => {
    const [image, checksum] = engine.images.pythonNumpy.split('@') as [string, string];
    const algorithm = { meta: { rawcode, container: { entrypoint: 'python3 $ALGO', image, tag: '', checksum } } };
    const { jobId } = await client.startJob({ environment: 'podman', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
    return client.waitForJob(jobId, { timeoutMs: 120_000 });
  };

  it('when a Python algorithm that imports numpy runs, then the job reaches 70 with its output, its files held at the output budget', async () => {
    const done = await run(`
import numpy as np, glob, resource
x = np.loadtxt(glob.glob('/data/inputs/*/0')[0])
open('/data/outputs/result.txt', 'w').write(f"sum={x.sum():.0f}")
open('/data/outputs/limits.txt', 'w').write(' '.join(str(resource.getrlimit(r)[1]) for r in (resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)))
print("pulled and computed on podman")
`);
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'result.txt')).toBe('sum=10');
    // the fsize ulimit (the budget, default diskGB, + 1 byte), and Podman's configured default nofile kept beside it
    expect(await resultText(client, done, 'limits.txt')).toBe(`${1024 ** 3 + 1} 20000`);
    expect(await resultText(client, done, 'algorithm.log')).toContain('pulled and computed on podman');
  });

  it('when the algorithm exhausts its memory, then it is reported as OOM (Podman says 137 without OOMKilled)', async () => {
    const done = await run('import numpy as np\nx = np.ones((1024, 1024, 1024), dtype=np.uint8)\nprint(x.sum())');
    expect(done.status).toBe(41);
    expect(done.terminationDetails).toMatchObject({ oomKilled: true });
  });

  it('when the jobs have ended, then no container of them is left on Podman', async () => {
    const Docker = (await import('dockerode')).default;
    const docker = new Docker({ socketPath: podman.socketPath });
    await waitFor('the job containers to be removed', async () =>
      (await docker.listContainers({ all: true })).every((c) => !c.Names.some((n) => n.includes('c2d-'))),
    );
  });
});
