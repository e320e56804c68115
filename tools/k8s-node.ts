import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './temporal-server';

/**
 * A real node for the local control plane (tools/k8s-control-plane.ts): containerd (Debian's, with a
 * config, state and socket of its own), a kubelet (built by tools/ensure-k8s.sh) that registers with the
 * API server, the CNI bridge plugin on a private /24 of its own, and kube-router's firewall enforcing
 * NetworkPolicy. Pods really run: their containers, volumes, logs and OOM kills are the kubelet's.
 *
 * One real node per host at a time (the kubelet owns host-wide things: its cgroup root, the pod network's
 * bridge, /var/log/containers). It needs root. Everything it changes on the host is recorded first in
 * `<dir>/host.json` and undone by stop() — or by stopRealNode(dir) from another process (`npm run k8s:down`,
 * a test teardown after a crash): sysctls the kubelet sets, mounts, network namespaces, the bridge, cgroups,
 * kube-router's nftables table and ipsets, /var/log/containers and /var/lib/cni when they were not there.
 *
 * Network: pods get addresses on BRIDGE_SUBNET; the host is reachable from them at the bridge's address
 * (`gateway`), nothing beyond it (no masquerade, no forwarding enabled here). NetworkPolicy decides the rest.
 */

export const REAL_NODE = 'c2d-node-0';
export const BRIDGE = 'c2d-br0';
export const BRIDGE_SUBNET = '10.213.0.0/24';
export const GATEWAY = '10.213.0.1';
/** The cluster's DNS domain (CoreDNS on the gateway address answers for it). */
const CLUSTER_DOMAIN = 'cluster.local';
/**
 * A second address of the host's, outside every private range (198.18.0.0/15 is reserved for network
 * tests): pods reach it as they would reach the internet, so that policies allowing "the internet but not
 * private ranges" (k8s/base/network-policies.yaml) can be tried for real. Nothing routes it off the host.
 */
export const OUTSIDE_ADDRESS = '198.18.0.1';
/** The pod sandbox image, imported into containerd from the pause program (no registry needed). */
export const SANDBOX_IMAGE = 'registry.k8s.io/pause:3.10';
/** Registries containerd pulls from over plain HTTP (the local one of tools/ensure-docker.sh). */
const LOCAL_REGISTRY = '127.0.0.1:5000';
/** Where the kubelet puts its pods' cgroups (under each hierarchy): removed on stop. */
const CGROUP_ROOT = 'c2d-kubelet';
/** Sysctls the kubelet sets when it starts (protectKernelDefaults: false); restored on stop. */
const KUBELET_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
];
/**
 * Bridged traffic through iptables (kube-router needs it for pod-to-pod policy), and forwarding (the CNI
 * bridge plugin turns it on for its gateway): restored when they were there.
 */
const BRIDGE_SYSCTLS = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.ipv4.ip_forward'];
/** Our nftables table: nothing from the pod network is forwarded off the host (forwarding is on for the bridge's gateway). */
const NFT_TABLE = 'c2d-node';
const CONTAINER_LOGS = '/var/log/containers';
const CNI_CACHE = '/var/lib/cni';
const LOCK = '/run/c2d-k8s-node.pid';

const run = promisify(execFile);

export interface RealNodeOptions {
  /** the node's working directory (on a disk filesystem: containerd's overlay snapshots live there) */
  dir: string;
  binDir: string;
  /** the control plane's API server, its pki directory (ca.crt, ca.key) and an admin kubeconfig */
  server: string;
  pki: string;
  adminKubeconfig: string;
  /** enforce NetworkPolicy with kube-router (default true) */
  networkPolicy?: boolean;
  timeoutMs?: number;
  /** own process groups, survives its launcher (npm run k8s:up) */
  detached?: boolean;
}

export interface RealNode {
  name: string;
  /** the host's address as pods see it (the bridge's; in the pods' private range) */
  gateway: string;
  /** another address of the host, outside the private ranges: "the internet" for pods (OUTSIDE_ADDRESS) */
  outsideAddress: string;
  /** containerd's socket (ctr --address) */
  containerdSocket: string;
  /** the kubelet's port on `gateway` (what a pod without a NetworkPolicy reaches: the kubernetes backend's network gate) */
  kubeletPort: number;
  stop(): Promise<void>;
}

/** What the host looked like before the node started: stop() puts it back. */
interface HostState {
  sysctls: Record<string, string>;
  netns: string[];
  ipsets: string[];
  nftTables: string[];
  hadContainerLogs: boolean;
  hadCniCache: boolean;
  pids: { name: string; pid: number }[];
}

const sh = async (cmd: string, args: string[]): Promise<string> => (await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
const quiet = async (cmd: string, args: string[]): Promise<string> => sh(cmd, args).catch(() => '');

function readSysctls(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [...KUBELET_SYSCTLS, ...BRIDGE_SYSCTLS]) {
    const file = `/proc/sys/${k.replace(/\./g, '/')}`;
    if (fs.existsSync(file)) out[k] = fs.readFileSync(file, 'utf8').trim();
  }
  return out;
}

const netnsList = (): string[] => (fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []);
const ipsetList = async (): Promise<string[]> => (await quiet('ipset', ['list', '-n'])).split('\n').filter(Boolean);
const nftTables = async (): Promise<string[]> =>
  (await quiet('nft', ['list', 'tables']))
    .split('\n')
    .map((l) => l.replace(/^table\s+/, '').trim())
    .filter(Boolean);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/**
 * The results claim `c2d-results` of `namespace` (what publishing pods write to) bound to a local volume
 * at `dir` on the real node: the worker, on the same host, reads the outputs from `dir` itself.
 */
export function localResultsVolume(dir: string, node: string, namespace: string): object {
  const pv = {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: `c2d-results-${namespace}` },
    spec: {
      capacity: { storage: '10Gi' },
      accessModes: ['ReadWriteMany'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: 'c2d-results',
      claimRef: { namespace, name: 'c2d-results' },
      local: { path: dir },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } },
    },
  };
  const pvc = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'c2d-results', namespace },
    spec: { accessModes: ['ReadWriteMany'], storageClassName: 'c2d-results', volumeName: pv.metadata.name, resources: { requests: { storage: '10Gi' } } },
  };
  return { apiVersion: 'v1', kind: 'List', items: [pv, pvc] };
}

// ---------- files the node runs on ----------

async function nodeCertificate(pki: string, dir: string, name: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, 'kubelet.key');
  const cert = path.join(dir, 'kubelet.crt');
  if (fs.existsSync(cert)) return { cert, key };
  const csr = path.join(dir, 'kubelet.csr');
  const ext = path.join(dir, 'kubelet.ext');
  fs.writeFileSync(ext, 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  await sh('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/O=system:nodes/CN=system:node:${name}`,
  ]);
  await sh('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    path.join(pki, 'ca.crt'),
    '-CAkey',
    path.join(pki, 'ca.key'),
    '-set_serial',
    `0x${Date.now().toString(16)}`,
    '-days',
    '3650',
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  return { cert, key };
}

/** A kubeconfig for `server` (cluster `c2d-local`) authenticating `user` with a client certificate. */
export function writeKubeconfig(file: string, server: string, creds: { ca: string; cert: string; key: string; user: string }): void {
  const b64 = (f: string): string => fs.readFileSync(f).toString('base64');
  const text = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: c2d-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(creds.ca)}`,
    'users:',
    `- name: ${creds.user}`,
    '  user:',
    `    client-certificate-data: ${b64(creds.cert)}`,
    `    client-key-data: ${b64(creds.key)}`,
    'contexts:',
    '- name: c2d-local',
    '  context:',
    '    cluster: c2d-local',
    `    user: ${creds.user}`,
    'current-context: c2d-local',
    '',
  ].join('\n');
  fs.writeFileSync(file, text, { mode: 0o600 });
}

function containerdConfig(dir: string, socket: string, cniConfDir: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${SANDBOX_IMAGE}"
  # CRI asks for oom_score_adj -998 for the sandbox; without CAP_SYS_RESOURCE every pod would fail
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConfDir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${LOCAL_REGISTRY}"]
    endpoint = ["http://${LOCAL_REGISTRY}"]
`;
}

/** Our own CNI network: a bridge the host holds the gateway address of; no masquerade, no port maps. */
function cniConf(ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'c2d-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet: BRIDGE_SUBNET, gateway: GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
    ],
  });
}

function kubeletConfig(dir: string, socket: string, port: number, ca: string): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // the node's address is the bridge's (a kubelet refuses loopback): pods can reach this port, so only
    // a client certificate of the control plane's CA gets in (the API server's, for logs and exec)
    address: GATEWAY,
    port,
    readOnlyPort: 0,
    healthzPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: ca } },
    authorization: { mode: 'AlwaysAllow' },
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${CGROUP_ROOT}`,
    failSwapOn: false,
    makeIPTablesUtilChains: false,
    containerRuntimeEndpoint: `unix://${socket}`,
    podLogsDir: path.join(dir, 'pod-logs'),
    serializeImagePulls: false,
    // a small test machine: evict only when really out of room
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 99,
    imageGCLowThresholdPercent: 98,
    nodeStatusReportFrequency: '10s',
    syncFrequency: '10s',
    fileCheckFrequency: '20s',
    registerNode: true,
    clusterDNS: [GATEWAY],
    clusterDomain: CLUSTER_DOMAIN,
    maxPods: 64,
    resolvConf: '/etc/resolv.conf',
  });
}

/**
 * The pause program as an OCI image archive (one layer: /pause), built here so that the node needs no
 * registry for its sandboxes; `ctr images import` takes it.
 */
async function pauseArchive(binDir: string, work: string): Promise<string> {
  const root = path.join(work, 'pause-image');
  const blobs = path.join(root, 'blobs', 'sha256');
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(blobs, { recursive: true });
  const layerDir = path.join(work, 'pause-layer');
  fs.rmSync(layerDir, { recursive: true, force: true });
  fs.mkdirSync(layerDir);
  fs.copyFileSync(path.join(binDir, 'pause'), path.join(layerDir, 'pause'));
  fs.chmodSync(path.join(layerDir, 'pause'), 0o755);
  const layerTar = path.join(work, 'pause-layer.tar');
  await sh('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', layerDir, '-cf', layerTar, 'pause']);
  const blob = (data: Buffer): { digest: string; size: number } => {
    const hex = createHash('sha256').update(data).digest('hex');
    fs.writeFileSync(path.join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layerBytes = fs.readFileSync(layerTar);
  const layer = blob(layerBytes);
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
        os: 'linux',
        config: { Entrypoint: ['/pause'], User: '65535:65535' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  fs.writeFileSync(path.join(root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(root, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': SANDBOX_IMAGE } }],
    }),
  );
  const archive = path.join(work, 'pause-image.tar');
  await sh('tar', ['-C', root, '-cf', archive, '.']);
  return archive;
}

// ---------- processes ----------

export interface Proc {
  name: string;
  child: ChildProcess;
}

/** Starts a daemon logging to `<dir>/logs/<name>.log`; `detached`: in its own process group, outliving its launcher. */
export function startProcess(name: string, bin: string, args: string[], dir: string, detached: boolean): Proc {
  const log = fs.openSync(path.join(dir, 'logs', `${name}.log`), 'a');
  const child = spawn(bin, args, { stdio: ['ignore', log, log], detached });
  fs.closeSync(log);
  child.on('error', () => undefined); // reported by whoever waits for it to start
  if (detached) child.unref();
  return { name, child };
}

async function waitFor(what: string, deadline: number, procs: Proc[], check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead) throw new Error(`the real node: ${dead.name} exited while starting; see its log in logs/${dead.name}.log`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`the real node: ${what} not within the time allowed`);
    await sleep(100);
  }
}

async function kubectlJson(binDir: string, kubeconfig: string, args: string[]): Promise<unknown> {
  return JSON.parse(await sh(path.join(binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args, '-o', 'json']));
}

/**
 * Starts the node and resolves once it is Ready (and kube-router's firewall is in place). Refuses
 * when another real node runs on this host; leftovers of one that crashed are cleaned up first.
 */
export async function startRealNode(opts: RealNodeOptions): Promise<RealNode> {
  if ((process.getuid?.() ?? 1) !== 0) throw new Error('a real Kubernetes node needs root (the kubelet manages cgroups, mounts and network namespaces)');
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const dir = path.resolve(opts.dir);
  const detached = opts.detached ?? false;
  const bin = (n: string): string => path.join(opts.binDir, n);
  const held = Number(fs.existsSync(LOCK) ? fs.readFileSync(LOCK, 'utf8').split('\n')[0] : 0);
  if (held && held !== process.pid && alive(held)) {
    throw new Error(
      `another real Kubernetes node runs on this host (started by pid ${held}, ${fs.readFileSync(LOCK, 'utf8').split('\n')[1] ?? ''}); stop it first (npm run k8s:down)`,
    );
  }
  if (held) {
    const stale = fs.readFileSync(LOCK, 'utf8').split('\n')[1];
    if (stale && fs.existsSync(stale)) await stopRealNode(stale);
  }
  fs.writeFileSync(LOCK, `${process.pid}\n${dir}\n`);
  for (const d of ['logs', 'containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs', 'work']) fs.mkdirSync(path.join(dir, d), { recursive: true });

  const state: HostState = {
    sysctls: readSysctls(),
    netns: netnsList(),
    ipsets: await ipsetList(),
    nftTables: await nftTables(),
    hadContainerLogs: fs.existsSync(CONTAINER_LOGS),
    hadCniCache: fs.existsSync(CNI_CACHE),
    pids: [],
  };
  const saveState = (): void => fs.writeFileSync(path.join(dir, 'host.json'), JSON.stringify(state, null, 2));
  saveState();
  for (const ctl of cgroupHierarchies()) fs.mkdirSync(path.join(ctl, CGROUP_ROOT), { recursive: true });

  const procs: Proc[] = [];
  const port = await freePort();
  const track = (p: Proc): Proc => {
    procs.push(p);
    if (p.child.pid) state.pids.push({ name: p.name, pid: p.child.pid });
    saveState();
    return p;
  };
  try {
    await prepareBridge();
    const socket = path.join(dir, 'containerd', 'containerd.sock');
    const cniConfDir = path.join(dir, 'cni', 'net.d');
    fs.writeFileSync(path.join(cniConfDir, '10-c2d.conflist'), cniConf(path.join(dir, 'cni', 'ipam')));
    fs.writeFileSync(path.join(dir, 'containerd', 'config.toml'), containerdConfig(path.join(dir, 'containerd'), socket, cniConfDir));
    const containerd = track(startProcess('containerd', '/usr/bin/containerd', ['--config', path.join(dir, 'containerd', 'config.toml')], dir, detached));
    const ctr = (args: string[]): Promise<string> => sh('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args]);
    await waitFor('containerd', deadline, [containerd], async () => (await ctr(['version'])).includes('Server'));
    await ctr(['images', 'import', '--all-platforms', await pauseArchive(opts.binDir, path.join(dir, 'work'))]);

    const { cert, key } = await nodeCertificate(opts.pki, dir, REAL_NODE);
    const kubeconfig = path.join(dir, 'kubelet.kubeconfig');
    writeKubeconfig(kubeconfig, opts.server, { ca: path.join(opts.pki, 'ca.crt'), cert, key, user: 'node' });
    fs.writeFileSync(path.join(dir, 'kubelet-config.json'), kubeletConfig(dir, socket, port, path.join(opts.pki, 'ca.crt')));
    const kubelet = track(
      startProcess(
        'kubelet',
        bin('kubelet'),
        [
          `--config=${path.join(dir, 'kubelet-config.json')}`,
          `--kubeconfig=${kubeconfig}`,
          `--root-dir=${path.join(dir, 'kubelet')}`,
          `--hostname-override=${REAL_NODE}`,
          `--node-ip=${GATEWAY}`,
          '-v=1',
        ],
        dir,
        detached,
      ),
    );
    await waitFor(`node ${REAL_NODE} Ready`, deadline, [containerd, kubelet], async () => {
      const node = (await kubectlJson(opts.binDir, opts.adminKubeconfig, ['get', 'node', REAL_NODE])) as {
        spec?: { taints?: unknown[] };
        status?: { conditions?: { type: string; status: string }[] };
      };
      return (node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false) && (node.spec?.taints ?? []).length === 0;
    });

    // Services: kube-proxy in nftables mode (its own tables), node ports on the bridge address only
    fs.writeFileSync(
      path.join(dir, 'kube-proxy.json'),
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'nftables',
        clientConnection: { kubeconfig: opts.adminKubeconfig },
        hostnameOverride: REAL_NODE,
        clusterCIDR: BRIDGE_SUBNET,
        nodePortAddresses: [`${GATEWAY}/32`],
        healthzBindAddress: `127.0.0.1:${await freePort()}`,
        metricsBindAddress: `127.0.0.1:${await freePort()}`,
        // leave the host's conntrack settings alone
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
      }),
    );
    const proxy = track(startProcess('kube-proxy', bin('kube-proxy'), [`--config=${path.join(dir, 'kube-proxy.json')}`, '-v=1'], dir, detached));
    // cluster DNS: CoreDNS on the gateway address, answering for Services and pods from the API server
    fs.writeFileSync(
      path.join(dir, 'Corefile'),
      [
        '.:53 {',
        `  bind ${GATEWAY}`,
        '  errors',
        `  kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {`,
        `    kubeconfig ${opts.adminKubeconfig} c2d-local`,
        '    pods insecure',
        '    fallthrough in-addr.arpa ip6.arpa',
        '  }',
        '  cache 5',
        '}',
        '',
      ].join('\n'),
    );
    const dns = track(startProcess('coredns', bin('coredns'), ['-conf', path.join(dir, 'Corefile')], dir, detached));
    await waitFor('kube-proxy and CoreDNS', deadline, [containerd, kubelet, proxy, dns], async () => {
      if (!(await quiet('nft', ['list', 'tables'])).includes('table ip kube-proxy')) return false;
      return new Promise<boolean>((resolve) => {
        const sock = connect({ host: GATEWAY, port: 53, timeout: 500 }, () => {
          sock.destroy();
          resolve(true);
        });
        sock.on('error', () => resolve(false));
        sock.on('timeout', () => {
          sock.destroy();
          resolve(false);
        });
      });
    });

    if (opts.networkPolicy ?? true) {
      const router = track(
        startProcess(
          'kube-router',
          bin('kube-router'),
          [
            `--kubeconfig=${opts.adminKubeconfig}`,
            '--run-firewall=true',
            '--run-router=false',
            '--run-service-proxy=false',
            '--enable-cni=false',
            '--enable-pod-egress=false',
            `--hostname-override=${REAL_NODE}`,
            '--health-port=0',
            '--metrics-port=0',
          ],
          dir,
          detached,
        ),
      );
      // its first full sync hooks the pod firewall chains into FORWARD/INPUT/OUTPUT
      await waitFor('kube-router firewall', deadline, [containerd, kubelet, router], async () =>
        (await quiet('iptables-save', ['-t', 'filter'])).includes('KUBE-ROUTER-FORWARD'),
      );
    }
  } catch (err) {
    await stopRealNode(dir).catch(() => undefined);
    throw err;
  }
  return {
    name: REAL_NODE,
    gateway: GATEWAY,
    outsideAddress: OUTSIDE_ADDRESS,
    containerdSocket: path.join(dir, 'containerd', 'containerd.sock'),
    kubeletPort: port,
    stop: () => stopRealNode(dir),
  };
}

function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  if (fs.existsSync(path.join(base, 'cgroup.controllers'))) return [base];
  return fs
    .readdirSync(base)
    .map((c) => path.join(base, c))
    .filter((p) => {
      try {
        return fs.statSync(p).isDirectory() && !fs.lstatSync(p).isSymbolicLink() && fs.existsSync(path.join(p, 'cgroup.procs'));
      } catch {
        return false;
      }
    });
}

/** Removes a cgroup tree bottom-up, killing what still runs in it. */
function removeCgroupTree(cg: string): void {
  if (!fs.existsSync(cg)) return;
  for (const e of fs.readdirSync(cg, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(cg, e.name));
  for (let i = 0; i < 50; i++) {
    try {
      fs.rmdirSync(cg);
      return;
    } catch {
      for (const pid of fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  fs.rmdirSync(cg);
}

async function stopPid(pid: number, graceMs: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (alive(pid) && Date.now() < until) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(20);
}

/** The processes the node of `dir` runs (containerd, kubelet, kube-proxy, CoreDNS, kube-router); none when stopped. */
export function realNodePids(dir: string): number[] {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'host.json'), 'utf8')) as HostState).pids.map((p) => p.pid).filter(alive);
  } catch {
    return [];
  }
}

/**
 * Stops the node of `dir` and puts the host back as host.json recorded it. Safe to call again, and from
 * another process than the one that started the node.
 */
export async function stopRealNode(dir: string): Promise<void> {
  const file = path.join(dir, 'host.json');
  if (!fs.existsSync(file)) return;
  const state = JSON.parse(fs.readFileSync(file, 'utf8')) as HostState;
  const socket = path.join(dir, 'containerd', 'containerd.sock');
  const byName = (n: string): number[] => state.pids.filter((p) => p.name === n).map((p) => p.pid);
  for (const name of ['kube-router', 'coredns', 'kube-proxy']) for (const pid of byName(name)) await stopPid(pid, 5_000);
  for (const pid of byName('kubelet')) await stopPid(pid, 10_000);
  // every container still there: killed with its shim (the shims outlive containerd)
  if (fs.existsSync(socket)) {
    const ctr = (args: string[]): Promise<string> => quiet('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args]);
    for (const id of (await ctr(['tasks', 'ls', '-q'])).split('\n').filter(Boolean)) await ctr(['tasks', 'kill', '-s', 'SIGKILL', '-a', id]);
  }
  for (const pid of byName('containerd')) await stopPid(pid, 10_000);
  for (const line of (await quiet('pgrep', ['-f', '-a', 'containerd-shim'])).split('\n').filter((l) => l.includes(socket))) {
    const pid = Number(line.split(' ')[0]);
    if (pid) await stopPid(pid, 1_000);
  }
  for (const ctl of cgroupHierarchies()) removeCgroupTree(path.join(ctl, CGROUP_ROOT));

  // mounts: anything under the node's dir (volumes, rootfs, shm), deepest first; then its network namespaces
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m.startsWith(`${dir}/`) || (m.startsWith('/run/netns/') && !state.netns.includes(path.basename(m)))))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await quiet('umount', ['-l', m]);
  for (const ns of netnsList()) if (!state.netns.includes(ns)) fs.rmSync(path.join('/run/netns', ns), { force: true });
  await removeBridge();

  // kube-router: its nftables table (when it made it) or its chains in an existing one, and its ipsets
  if (!state.nftTables.includes('ip filter')) await quiet('nft', ['delete', 'table', 'ip', 'filter']);
  else await removeKubeRouterChains();
  // kube-proxy's tables
  for (const family of ['ip', 'ip6']) if (!state.nftTables.includes(`${family} kube-proxy`)) await quiet('nft', ['delete', 'table', family, 'kube-proxy']);
  for (const set of await ipsetList()) if (!state.ipsets.includes(set)) await quiet('ipset', ['destroy', set]);

  for (const [k, v] of Object.entries(state.sysctls)) {
    try {
      fs.writeFileSync(`/proc/sys/${k.replace(/\./g, '/')}`, v);
    } catch {
      /* read-only here: nothing was changed either */
    }
  }
  if (!state.hadContainerLogs) fs.rmSync(CONTAINER_LOGS, { recursive: true, force: true });
  else
    for (const f of fs.readdirSync(CONTAINER_LOGS))
      if (fs.readlinkSync(path.join(CONTAINER_LOGS, f)).startsWith(`${dir}/`)) fs.rmSync(path.join(CONTAINER_LOGS, f));
  if (!state.hadCniCache) fs.rmSync(CNI_CACHE, { recursive: true, force: true });
  fs.rmSync(file);
  if (fs.existsSync(LOCK) && fs.readFileSync(LOCK, 'utf8').split('\n')[1] === dir) fs.rmSync(LOCK);
}

/**
 * The pod network's bridge with the host's two addresses on it (the gateway, the outside address), and
 * our nftables table that keeps pod traffic on the host. Made before the node (and the API server, which
 * listens on the gateway address) so that the node has its address from the start; the CNI plugin adopts
 * the bridge. removeBridge() undoes it.
 */
export async function prepareBridge(): Promise<void> {
  await removeBridge();
  await sh('ip', ['link', 'add', 'name', BRIDGE, 'type', 'bridge']);
  await sh('ip', ['addr', 'add', `${GATEWAY}/${BRIDGE_SUBNET.split('/')[1]}`, 'dev', BRIDGE]);
  await sh('ip', ['addr', 'add', `${OUTSIDE_ADDRESS}/32`, 'dev', BRIDGE]);
  await sh('ip', ['link', 'set', BRIDGE, 'up']);
  const rules = [
    `table inet ${NFT_TABLE} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    iifname "${BRIDGE}" oifname != "${BRIDGE}" drop`,
    `    oifname "${BRIDGE}" iifname != "${BRIDGE}" drop`,
    '  }',
    '}',
  ].join('\n');
  const file = path.join(fs.mkdtempSync('/tmp/c2d-nft-'), 'rules.nft');
  fs.writeFileSync(file, `${rules}\n`);
  try {
    await sh('nft', ['-f', file]);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

export async function removeBridge(): Promise<void> {
  await quiet('ip', ['link', 'del', BRIDGE]);
  await quiet('nft', ['delete', 'table', 'inet', NFT_TABLE]);
}

/** kube-router's chains in a filter table that was there before it: the jumps to them, then the chains. */
async function removeKubeRouterChains(): Promise<void> {
  const rules = (await quiet('iptables-save', ['-t', 'filter'])).split('\n');
  for (const r of rules.filter((l) => l.startsWith('-A ') && / -j KUBE-(ROUTER|NWPLCY|POD-FW)/.test(l) && !/^-A KUBE-/.test(l))) {
    await quiet('iptables', ['-t', 'filter', ...r.replace(/^-A /, '-D ').split(' ')]);
  }
  const chains = rules.filter((l) => /^:KUBE-/.test(l)).map((l) => l.slice(1).split(' ')[0]!);
  for (const c of chains) await quiet('iptables', ['-t', 'filter', '-F', c]);
  for (const c of chains) await quiet('iptables', ['-t', 'filter', '-X', c]);
}
