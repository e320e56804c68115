/**
 * The provider deployed from `k8s/overlays/dev` onto the local cluster with a real node: Temporal, the
 * API and the worker run as pods (the provider image built here, `pod-images/Dockerfile`), and a consumer
 * outside the cluster reaches the API through `kubectl port-forward`, runs a job on the kubernetes
 * backend to 70 and downloads its result. Only what a user changes for their cluster is changed here, in
 * a kustomization over the overlay: where the images are, the environment's images and network gate, the
 * data server this test allows, and where the results directory lives on the node.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { ProviderClient } from '../../src/client/provider-client';
import { publishToCatalog } from '../../tools/catalog/catalog-publisher';
import { serveFiles } from '../../tools/local-stack';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { type Kube, startKube } from '../helpers/kube';
import { describeAsRoot } from '../helpers/privilege';
import { resultText, waitFor } from '../integration/helpers';

const overlay = path.resolve(__dirname, '../../k8s/overlays/dev');

describeAsRoot('a real Kubernetes node (containerd, the kubelet, kube-proxy, CoreDNS, kube-router)')('the provider deployed from k8s/overlays/dev', () => {
  let engine: TestEngine;
  let kube: Kube;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let work: string;
  let forward: ChildProcess | undefined;
  let client: ProviderClient;

  const byDigest = (ref: string) => {
    const [name, digest] = ref.split('@') as [string, string];
    return { newName: name, digest };
  };

  beforeAll(async () => {
    engine = startTestEngine({ provider: true });
    kube = await startKube({ node: 'real' });
    data = await serveFiles({ 'numbers.csv': '1\n2\n3\n4\n' }, { address: kube.realNode!.outsideAddress });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-deploy-'));
    // the results directory on the node, shared by the publishing pods and the worker (uid 1000), as the overlay's comment says
    const results = path.join(work, 'results');
    fs.mkdirSync(results, { mode: 0o770 });
    fs.chownSync(results, 1000, 1000);
    const environments = [
      {
        id: 'k8s-small',
        backend: 'kubernetes',
        cpuNumber: 0.5,
        ramGB: 0.5,
        diskGB: 1,
        maxJobs: 2,
        maxJobDuration: 300,
        kubernetes: {
          namespace: 'c2d-compute',
          images: { configure: engine.images.configure, publish: engine.images.publish },
          algorithmImages: { python: engine.images.pythonNumpy },
          networkGate: { port: kube.realNode!.kubeletPort },
        },
      },
    ];
    const hostPathPatch = (pv: string) => ({
      target: { kind: 'PersistentVolume', name: pv },
      patch: JSON.stringify([{ op: 'replace', path: '/spec/hostPath/path', value: results }]),
    });
    const kustomization = {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [path.relative(work, overlay)],
      images: [
        { name: 'c2d-provider', ...byDigest(engine.images.provider!) },
        { name: 'temporalio/temporal', ...byDigest(engine.images.temporal!) },
      ],
      patches: [
        {
          target: { kind: 'ConfigMap', name: 'c2d-settings' },
          patch: JSON.stringify([{ op: 'add', path: '/data/C2D_ALLOWED_PRIVATE_HOSTS', value: data.host }]),
        },
        {
          target: { kind: 'ConfigMap', name: 'c2d-environments' },
          patch: JSON.stringify([{ op: 'replace', path: '/data/environments.yaml', value: JSON.stringify(environments) }]),
        },
        hostPathPatch('c2d-results-compute'),
        hostPathPatch('c2d-results-provider'),
      ],
    };
    fs.writeFileSync(path.join(work, 'kustomization.yaml'), JSON.stringify(kustomization, null, 2));
    await kube.kubectl(['apply', '-k', work]);
    for (const d of ['temporal', 'c2d-worker', 'c2d-api']) {
      await kube.kubectl(['-n', 'c2d-provider', 'rollout', 'status', `deployment/${d}`, '--timeout=240s']).catch(async (err: unknown) => {
        const pods = await kube.kubectl(['-n', 'c2d-provider', 'get', 'pods', '-o', 'wide']).catch(() => '');
        const events = await kube.kubectl(['-n', 'c2d-provider', 'get', 'events', '--sort-by=.lastTimestamp']).catch(() => '');
        const logs = await kube.kubectl(['-n', 'c2d-provider', 'logs', `deployment/${d}`, '--tail=40']).catch(() => '');
        throw new Error(`${(err as Error).message}\n${pods}\n${events}\n${logs}`);
      });
    }

    // the consumer, outside the cluster: the API's Service through port-forward
    forward = spawn(kube.binDir + '/kubectl', [`--kubeconfig=${kube.kubeconfig}`, '-n', 'c2d-provider', 'port-forward', 'svc/c2d-api', ':80'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      forward!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      forward!.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      forward!.once('exit', (code) => reject(new Error(`kubectl port-forward exited ${code}: ${out}`)));
    });
    client = new ProviderClient(`http://127.0.0.1:${port}`, new Wallet(`0x${randomBytes(32).toString('hex')}`));
  }, 900_000);

  afterAll(async () => {
    forward?.kill();
    data?.close();
    await kube?.stop();
    engine?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('when a consumer outside the cluster publishes a dataset and runs a Python algorithm, then the job runs in real pods to 70 and the result downloads', async () => {
    // the catalog lives in the data volume the API and the worker share: the local volume its claim is bound to
    const pv = (await kube.kubectl(['-n', 'c2d-provider', 'get', 'pvc', 'c2d-data', '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const dataDir = (await kube.kubectl(['get', 'pv', pv, '-o', 'jsonpath={.spec.local.path}'])).trim();
    const catalog = path.join(dataDir, 'catalog');
    fs.mkdirSync(catalog, { recursive: true });
    const dataset = await publishToCatalog(client, catalog, 8996, {
      type: 'dataset',
      name: 'numbers',
      urls: [data.url('numbers.csv')],
      compute: { allowRawAlgorithm: true },
      allow: [client.address],
    });
    const checksum = engine.images.pythonNumpy.split('@')[1]!;
    const { jobId } = await client.startJob({
      environment: 'k8s-small',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: {
        meta: {
          rawcode: "import numpy as np, glob\nx = np.loadtxt(glob.glob('/data/inputs/*/0')[0])\nopen('/data/outputs/sum.txt', 'w').write(str(int(x.sum())))\n",
          container: { entrypoint: 'python3 $ALGO', image: 'python', tag: '3', checksum },
        },
      },
    });
    const done = await client.waitForJob(jobId, { timeoutMs: 180_000 });
    expect({ status: done.status, terminationDetails: done.terminationDetails }).toMatchObject({ status: 70, terminationDetails: { exitCode: 0 } });
    expect(await resultText(client, done, 'sum.txt')).toBe('10');
    await waitFor('the job pods to go', async () => (await kube.kubectl(['-n', 'c2d-compute', 'get', 'pods', '-o', 'name'])).trim() === '', 60_000, 500);
  }, 240_000);
});
