import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config';
import {
  GATEWAY,
  prepareBridge,
  type Proc,
  type RealNode,
  REAL_NODE,
  realNodePids,
  removeBridge,
  startProcess,
  startRealNode,
  stopRealNode,
  writeKubeconfig,
} from './k8s-node';
import { repoRoot } from './paths';
import { freePort, waitForPort } from './temporal-server';

/**
 * A local Kubernetes control plane on loopback, for tests and `npm run k8s:up`: etcd, kube-apiserver
 * (secure port only; RBAC + Node authorizers; default admission plugins, ServiceAccount and
 * NamespaceLifecycle among them), kube-controller-manager (garbage collector, service accounts and their
 * tokens, namespaces, jobs, deployments), kube-scheduler and kwok, which plays the kubelet of one fake
 * node (`kwok-node-0`): scheduled pods become Running and Ready. The objects, watches, RBAC and admission
 * are real; no container runs. Claims bind (default StorageClass `local`: a pool of PersistentVolumes).
 *
 * Pod phases: kwok marks every pod on its node Running (and Ready) and deletes pods being deleted; it
 * never ends a pod by itself. To end one, a test writes the pod's status (subresource `status`): kwok
 * leaves alone pods annotated `kwok.x-k8s.io/status: custom` — see KWOK_CUSTOM_STATUS_ANNOTATION.
 *
 * With `node: 'real'` a real node joins instead of the fake one (tools/k8s-node.ts: containerd, a kubelet,
 * kube-router for NetworkPolicy; root only): pods really run, and the default StorageClass's pool is of
 * local PersistentVolumes on that node (real directories; the kubelet applies fsGroup to them).
 *
 * Binaries come from tools/ensure-k8s.sh (built from Go modules, cached outside the clone).
 */

/** Annotation (key: value) that makes kwok leave a pod's status to the test. */
export const KWOK_CUSTOM_STATUS_ANNOTATION = { 'kwok.x-k8s.io/status': 'custom' } as const;
/** Name of the fake node pods are scheduled on. */
export const FAKE_NODE = 'kwok-node-0';

export interface ControlPlaneOptions {
  /** working directory: certificates, kubeconfigs, etcd data, logs (kept across restarts) */
  dir: string;
  /** binaries directory; default: what tools/ensure-k8s.sh prints (builds them the first time) */
  binDir?: string;
  /** own process groups, survives its launcher (npm run k8s:up) */
  detached?: boolean;
  /** how long to wait for the API server and the controllers; default 120 s */
  timeoutMs?: number;
  /** PersistentVolumes in the pool of the default StorageClass (claims bind to them); default 32 */
  volumes?: number;
  /** 'fake' (default): kwok's node, no container runs; 'real': containerd + kubelet + kube-router (root only) */
  node?: 'fake' | 'real';
  /** where the real node keeps its state (a disk filesystem: container images and snapshots); default `<dir>/node` */
  nodeDir?: string;
}

export interface ControlPlane {
  /** path of a kubeconfig for a cluster admin (system:masters) */
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** the node pods are scheduled on: kwok's fake one, or the real one */
  nodeName: string;
  /** the real node (undefined with the fake one) */
  realNode?: RealNode;
  stop(): Promise<void>;
}

const run = promisify(execFile);

export function k8sBinDir(): string {
  return execFileSync('bash', [path.join(repoRoot, 'tools/ensure-k8s.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

// ---------- certificates (openssl CLI; ECDSA P-256: fast to make) ----------

interface Leaf {
  name: string;
  subject: string;
  /** extension lines for `openssl x509 -extfile` */
  ext: string[];
}

async function makeCertificates(pki: string): Promise<void> {
  fs.mkdirSync(pki, { recursive: true, mode: 0o700 });
  const p = (f: string): string => path.join(pki, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!fs.existsSync(p('ca.crt'))) {
    await run('openssl', ['req', '-x509', '-new', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '3650', '-subj', '/CN=c2d-local-kubernetes-ca']);
  }
  if (!fs.existsSync(p('sa.key'))) {
    await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p('sa.key')]);
    await run('openssl', ['ec', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
  }
  const client = ['keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'];
  const leaves: Leaf[] = [
    {
      name: 'apiserver',
      subject: '/CN=kube-apiserver',
      ext: [
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:${GATEWAY},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
      ],
    },
    { name: 'admin', subject: '/O=system:masters/CN=c2d-admin', ext: client },
    { name: 'controller-manager', subject: '/CN=system:kube-controller-manager', ext: client },
    { name: 'scheduler', subject: '/CN=system:kube-scheduler', ext: client },
    // kwok plays the kubelet and also writes pod status of any namespace: an admin, like kwokctl's.
    { name: 'kwok', subject: '/O=system:masters/CN=kwok-controller', ext: client },
    // the API server's client certificate towards a real node's kubelet (logs, exec): the only client it accepts
    { name: 'kubelet-client', subject: '/O=system:masters/CN=kube-apiserver-kubelet-client', ext: client },
  ];
  await Promise.all(
    leaves.map(async (l) => {
      if (fs.existsSync(p(`${l.name}.crt`))) return;
      fs.writeFileSync(p(`${l.name}.ext`), `${l.ext.join('\n')}\n`);
      await run('openssl', ['req', '-new', ...ec, '-keyout', p(`${l.name}.key`), '-out', p(`${l.name}.csr`), '-subj', l.subject]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        p(`${l.name}.csr`),
        '-CA',
        p('ca.crt'),
        '-CAkey',
        p('ca.key'),
        '-set_serial',
        `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
        '-days',
        '3650',
        '-extfile',
        p(`${l.name}.ext`),
        '-out',
        p(`${l.name}.crt`),
      ]);
    }),
  );
}

// ---------- processes ----------

/** Rejects when the process ends (or cannot start); only ever raced against startup steps. */
function exitOf(p: Proc): Promise<never> {
  const ended = new Promise<never>((_, reject) => {
    p.child.once('exit', (code, signal) => reject(new Error(`${p.name} exited (${signal ?? code}) while starting; see its log in logs/${p.name}.log`)));
    p.child.once('error', (err) => reject(new Error(`${p.name} did not start: ${err.message}`)));
  });
  ended.catch(() => undefined); // a stop() after startup is no error
  return ended;
}

/** GET on the API server as admin; resolves with the status code and body. */
function get(server: string, pki: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${server}${urlPath}`,
      {
        ca: fs.readFileSync(path.join(pki, 'ca.crt')),
        cert: fs.readFileSync(path.join(pki, 'admin.crt')),
        key: fs.readFileSync(path.join(pki, 'admin.key')),
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function until(what: string, deadline: number, check: () => Promise<boolean>, failed: Promise<never>): Promise<void> {
  let gaveUp = false;
  failed.catch(() => (gaveUp = true));
  const loop = async (): Promise<void> => {
    while (!gaveUp) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`the local control plane: ${what} not within the time allowed`);
      await sleep(100);
    }
  };
  await Promise.race([loop(), failed]);
}

async function kill(procs: Proc[]): Promise<void> {
  for (const p of [...procs].reverse()) {
    const c = p.child;
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const force = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(force);
  }
}

/** The fake node kwok manages: generous allocatable resources (GPUs included) so any test pod fits. */
function fakeNode(): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: FAKE_NODE,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': FAKE_NODE, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
    },
    status: {
      allocatable: { cpu: '64', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti', 'nvidia.com/gpu': '8' },
      capacity: { cpu: '64', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti', 'nvidia.com/gpu': '8' },
      nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', kubeletVersion: 'fake', kubeProxyVersion: 'fake' },
    },
  };
}

/** Name of the default StorageClass: no provisioner, a pool of ready PersistentVolumes instead. */
export const STORAGE_CLASS = 'local';

/**
 * Storage without a provisioner: a default StorageClass and `count` PersistentVolumes of it (1Ti,
 * ReadWriteOnce and ReadWriteMany) the PV controller binds claims to — one claim per volume, Retained
 * after the claim goes. On the fake node nothing mounts them (kwok runs no container); on the real one
 * each is a `local` volume: a directory under `localDir`, pinned to that node.
 */
function storage(count: number, local?: { dir: string; node: string }): object {
  const pvs = Array.from({ length: count }, (_, i) => {
    const name = `pool-${String(i).padStart(3, '0')}`;
    if (local) fs.mkdirSync(path.join(local.dir, name), { recursive: true, mode: 0o755 });
    return {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name },
      spec: {
        capacity: { storage: '1Ti' },
        accessModes: ['ReadWriteOnce', 'ReadWriteMany'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: STORAGE_CLASS,
        ...(local
          ? {
              local: { path: path.join(local.dir, name) },
              nodeAffinity: {
                required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [local.node] }] }] },
              },
            }
          : { hostPath: { path: `/nonexistent/c2d-pool-${i}` } }),
      },
    };
  });
  const sc = {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: STORAGE_CLASS, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: 'kubernetes.io/no-provisioner',
    volumeBindingMode: 'Immediate',
    reclaimPolicy: 'Retain',
  };
  return { apiVersion: 'v1', kind: 'List', items: [sc, ...pvs] };
}

/**
 * Starts (or restarts on the same `dir`, keeping its data) the control plane and resolves once the API
 * server is ready, the controllers run (the `default` ServiceAccount exists) and the fake node is Ready.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 120_000);
  const detached = opts.detached ?? false;
  const dir = path.resolve(opts.dir);
  const binDir = opts.binDir ?? k8sBinDir();
  const bin = (name: string): string => path.join(binDir, name);
  const pki = path.join(dir, 'pki');
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  await makeCertificates(pki);

  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  // with a real node the API server listens on the pod network's gateway (pods reach it through the
  // `kubernetes` Service); the bridge is made first. Otherwise on loopback.
  const real = opts.node === 'real';
  const apiHost = real ? GATEWAY : '127.0.0.1';
  const server = `https://${apiHost}:${apiPort}`;
  const kubeconfig = path.join(dir, 'admin.kubeconfig');
  for (const user of ['admin', 'controller-manager', 'scheduler', 'kwok']) {
    const file = (ext: string): string => path.join(pki, `${user}.${ext}`);
    writeKubeconfig(path.join(dir, `${user}.kubeconfig`), server, { ca: path.join(pki, 'ca.crt'), cert: file('crt'), key: file('key'), user });
  }

  const procs: Proc[] = [];
  const nodeDir = path.resolve(opts.nodeDir ?? path.join(dir, 'node'));
  let realNode: RealNode | undefined;
  const stop = async (): Promise<void> => {
    if (real) {
      await stopRealNode(nodeDir);
      await removeBridge();
    }
    await kill(procs);
  };
  try {
    if (real) await prepareBridge();
    const etcd = startProcess(
      'etcd',
      bin('etcd'),
      [
        '--name=c2d',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=c2d=http://127.0.0.1:${etcdPeerPort}`,
        '--force-new-cluster',
        '--unsafe-no-fsync',
        '--log-level=warn',
        '--quota-backend-bytes=2147483648',
      ],
      dir,
      detached,
    );
    procs.push(etcd);
    await Promise.race([waitForPort(etcdPort, '127.0.0.1', deadline - Date.now()), exitOf(etcd)]);

    const api = startProcess(
      'kube-apiserver',
      bin('kube-apiserver'),
      [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        `--bind-address=${apiHost}`,
        `--advertise-address=${apiHost}`,
        `--secure-port=${apiPort}`,
        `--cert-dir=${pki}`,
        `--tls-cert-file=${path.join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${path.join(pki, 'apiserver.key')}`,
        `--client-ca-file=${path.join(pki, 'ca.crt')}`,
        '--authorization-mode=Node,RBAC',
        // The defaults (NamespaceLifecycle, LimitRanger, ServiceAccount, ResourceQuota, PodSecurity, ...) plus NodeRestriction.
        '--enable-admission-plugins=NodeRestriction',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${path.join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${path.join(pki, 'sa.key')}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        // No real endpoints to publish for the `kubernetes` Service on loopback (not a valid endpoint address).
        ...(real ? [] : ['--endpoint-reconciler-type=none']),
        '--allow-privileged=true',
        '--profiling=false',
        '--enable-priority-and-fairness=false',
        // a real node's kubelet: reached at its address (its name resolves nowhere), with a client certificate
        '--kubelet-preferred-address-types=InternalIP',
        `--kubelet-client-certificate=${path.join(pki, 'kubelet-client.crt')}`,
        `--kubelet-client-key=${path.join(pki, 'kubelet-client.key')}`,
        '-v=0',
      ],
      dir,
      detached,
    );
    procs.push(api);
    await until('kube-apiserver /readyz', deadline, async () => (await get(server, pki, '/readyz')).status === 200, exitOf(api));

    const cm = startProcess(
      'kube-controller-manager',
      bin('kube-controller-manager'),
      [
        `--kubeconfig=${path.join(dir, 'controller-manager.kubeconfig')}`,
        '--controllers=garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,root-ca-certificate-publisher-controller,job-controller,deployment-controller,replicaset-controller,ttl-after-finished-controller,pod-garbage-collector-controller,node-lifecycle-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller',
        `--service-account-private-key-file=${path.join(pki, 'sa.key')}`,
        `--root-ca-file=${path.join(pki, 'ca.crt')}`,
        // Each controller as its own ServiceAccount with its bootstrap role (system:controller:*), as kubeadm does.
        '--use-service-account-credentials=true',
        '--leader-elect=false',
        '--secure-port=0',
        '--concurrent-gc-syncs=5',
        '-v=0',
      ],
      dir,
      detached,
    );
    procs.push(cm);
    const sched = startProcess(
      'kube-scheduler',
      bin('kube-scheduler'),
      [`--kubeconfig=${path.join(dir, 'scheduler.kubeconfig')}`, '--leader-elect=false', '--secure-port=0', '-v=0'],
      dir,
      detached,
    );
    procs.push(sched);
    const failed = Promise.race([exitOf(cm), exitOf(sched)]);
    if (!real) {
      const kwok = startProcess(
        'kwok',
        bin('kwok'),
        [
          `--kubeconfig=${path.join(dir, 'kwok.kubeconfig')}`,
          '--manage-all-nodes=false',
          '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
          '--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom',
          '--cidr=10.244.0.0/16',
          '--node-ip=10.0.0.1',
          '--node-lease-duration-seconds=40',
        ],
        dir,
        detached,
      );
      procs.push(kwok);
      await kubectl(binDir, kubeconfig, ['apply', '-f', '-'], JSON.stringify(fakeNode()));
    }
    const volumes = opts.volumes ?? 32;
    if (volumes > 0) {
      const local = real ? { dir: path.join(nodeDir, 'volumes'), node: REAL_NODE } : undefined;
      await kubectl(binDir, kubeconfig, ['apply', '-f', '-'], JSON.stringify(storage(volumes, local)));
    }
    await until(
      'the default ServiceAccount (controller-manager)',
      deadline,
      async () => (await get(server, pki, '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
      failed,
    );
    if (real) {
      fs.mkdirSync(nodeDir, { recursive: true });
      realNode = await startRealNode({ dir: nodeDir, binDir, server, pki, adminKubeconfig: kubeconfig, detached, timeoutMs: deadline - Date.now() });
    } else {
      // kwok reports the node Ready; the node lifecycle controller then lifts the not-ready taint the API server put on it.
      await until(
        `node ${FAKE_NODE} Ready and schedulable`,
        deadline,
        async () => {
          const res = await get(server, pki, `/api/v1/nodes/${FAKE_NODE}`);
          if (res.status !== 200) return false;
          const node = JSON.parse(res.body) as { spec?: { taints?: unknown[] }; status?: { conditions?: { type: string; status: string }[] } };
          return (node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false) && (node.spec?.taints ?? []).length === 0;
        },
        Promise.race([failed, exitOf(procs.at(-1)!)]),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const state: State = { server, kubeconfig, pids: procs.map((p) => ({ name: p.name, pid: p.child.pid ?? 0 })), ...(real ? { nodeDir } : {}) };
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state, null, 2));
  return { kubeconfig, server, nodeName: real ? REAL_NODE : FAKE_NODE, ...(realNode ? { realNode } : {}), stop };
}

/** Runs the kubectl that ensure-k8s.sh provides against the given kubeconfig; resolves with stdout. */
export async function kubectl(binDir: string, kubeconfig: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(path.join(binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

// ---------- npm run k8s:up / k8s:down ----------

interface State {
  server: string;
  kubeconfig: string;
  pids: { name: string; pid: number }[];
  /** the real node's directory, when one runs */
  nodeDir?: string;
}

/** Whether the process runs (a zombie whose parent is gone counts as stopped). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): kill(0) is all we know
  }
};

function readState(dir: string): State | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

/** Stops what `up` started in `dir` (the real node first, then the control plane, last started first); returns how many processes it stopped. */
export async function down(dir: string): Promise<number> {
  const state = readState(dir);
  if (!state) return 0;
  let stopped = 0;
  if (state.nodeDir) {
    stopped += realNodePids(state.nodeDir).length;
    await stopRealNode(state.nodeDir);
    await removeBridge();
  }
  for (const { pid } of [...state.pids].reverse()) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    stopped++;
  }
  fs.rmSync(path.join(dir, 'state.json'), { force: true });
  return stopped;
}

export async function main(argv: string[]): Promise<void> {
  const config = loadConfig(process.env);
  const dir = path.join(config.dataDir, 'k8s');
  const cmd = argv[0];
  if (cmd === 'up') {
    const state = readState(dir);
    if (state && state.pids.every((p) => alive(p.pid))) {
      console.log(`The local control plane already runs (${state.server}). kubeconfig:\n${state.kubeconfig}`);
      return;
    }
    if (state) await down(dir);
    const t0 = Date.now();
    // a real node where it can run (root, containerd installed by tools/setup.sh --k8s); --fake-node: kwok's
    const canRunReal = (process.getuid?.() ?? 1) === 0 && fs.existsSync('/usr/bin/containerd');
    const node = argv.includes('--fake-node') || !canRunReal ? 'fake' : 'real';
    const cp = await startControlPlane({ dir, detached: true, node });
    console.log(`Local Kubernetes control plane on ${cp.server} (ready in ${((Date.now() - t0) / 1000).toFixed(1)} s); logs in ${path.join(dir, 'logs')}.`);
    console.log(
      node === 'real'
        ? `Node ${cp.nodeName}: a real kubelet (containerd, NetworkPolicy by kube-router); pods reach the host at ${cp.realNode?.gateway}.`
        : `Node ${cp.nodeName}: kwok's fake node (no container runs)${canRunReal ? '' : '; a real node needs root and containerd (bash tools/setup.sh --k8s as root)'}.`,
    );
    console.log(`Use it with: export KUBECONFIG=${cp.kubeconfig}   (stop it with npm run k8s:down). kubeconfig:`);
    console.log(cp.kubeconfig);
    process.exit(0); // the children run on in their own process groups
  } else if (cmd === 'down') {
    const n = await down(dir);
    console.log(n > 0 ? `Stopped the local control plane (${n} processes); its data stays in ${dir}.` : 'No local control plane was running.');
  } else {
    throw new Error('usage: k8s-control-plane up [--fake-node] | down');
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
