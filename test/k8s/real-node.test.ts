/**
 * The local control plane with a real node (tools/k8s-node.ts): containers run under containerd and
 * the kubelet, the API server reports what they did (phase, exit code, OOM kill, logs), kube-router
 * enforces NetworkPolicy on the pod network, and stopping the node leaves the host as it found it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { NETWORK_GATE_SCRIPT } from '../../src/net/network-gate';
import { BRIDGE } from '../../tools/k8s-node';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { type Kube, type PodJson, startKube } from '../helpers/kube';
import { describeAsRoot } from '../helpers/privilege';

const NS = 'real-node-test';

/** What the node may change on the host and must put back. */
function hostSnapshot(): Record<string, unknown> {
  const out = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' });
    } catch {
      return '';
    }
  };
  const sysctls = ['vm.overcommit_memory', 'vm.panic_on_oom', 'kernel.panic', 'kernel.panic_on_oops', 'net.ipv4.ip_forward'].map(
    (k) => `${k}=${fs.readFileSync(`/proc/sys/${k.replace(/\./g, '/')}`, 'utf8').trim()}`,
  );
  const cgroups = fs
    .readdirSync('/sys/fs/cgroup')
    .filter((c) => fs.existsSync(`/sys/fs/cgroup/${c}/c2d-kubelet`) || fs.existsSync(`/sys/fs/cgroup/${c}/kubepods`));
  return {
    sysctls,
    links: out('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(':')[1]?.trim().split('@')[0])
      .filter(Boolean)
      .sort(),
    netns: fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns').sort() : [],
    nftTables: out('nft', ['list', 'tables']).trim().split('\n').filter(Boolean).sort(),
    ipsets: out('ipset', ['list', '-n']).trim().split('\n').filter(Boolean).sort(),
    containerLogs: fs.existsSync('/var/log/containers'),
    cniCache: fs.existsSync('/var/lib/cni'),
    cgroups,
    mounts: fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => /c2d-node-|\/run\/netns\/cni-/.test(l)).length,
    shims: out('pgrep', ['-f', 'containerd-shim']).trim().split('\n').filter(Boolean).length,
  };
}

let before: Record<string, unknown>;
let engine: TestEngine;
let kube: Kube | undefined;
let hostServer: http.Server;
let hostPort: number;

/** A pod of one python container (the image from the local registry, by digest) that ends by itself. */
function pythonPod(name: string, code: string, extra: { labels?: Record<string, string>; memory?: string; gate?: boolean } = {}): string {
  // the kubernetes backend's network gate (specs.ts), dialing the kubelet: the container starts once the policy holds
  const gate = {
    name: 'network-gate',
    image: engine.images.pythonNumpy,
    command: ['node', '-e', NETWORK_GATE_SCRIPT],
    env: [
      { name: 'GATE_HOST', value: kube!.realNode!.gateway },
      { name: 'GATE_PORT', value: String(kube!.realNode!.kubeletPort) },
      { name: 'GATE_TIMEOUT_SECONDS', value: '60' },
    ],
  };
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: extra.labels ?? {} },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 },
      ...(extra.gate ? { initContainers: [gate] } : {}),
      containers: [
        {
          name: 'main',
          image: engine.images.pythonNumpy,
          command: ['python3', '-c', code],
          resources: { limits: { memory: extra.memory ?? '128Mi', cpu: '500m' } },
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  });
}

const ended = (p: PodJson): boolean => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
type Terminated = { exitCode: number; reason?: string };
const terminatedOf = (p: PodJson): Terminated | undefined =>
  (p.status?.containerStatuses as { state?: { terminated?: Terminated } }[] | undefined)?.[0]?.state?.terminated;

describeAsRoot('a real Kubernetes node (containerd, the kubelet, kube-router)')('the local control plane with a real node', () => {
  beforeAll(async () => {
    before = hostSnapshot();
    engine = startTestEngine();
    kube = await startKube({ node: 'real' });
    await kube.kubectl(['create', 'namespace', NS]);
    await kube.waitForServiceAccount(NS);
    // a service of the host, on the address pods reach it at (the bridge's): what the policy must keep them from
    hostServer = http.createServer((_, res) => res.end('host'));
    await new Promise<void>((resolve) => hostServer.listen(0, kube!.realNode!.gateway, resolve));
    hostPort = (hostServer.address() as AddressInfo).port;
  }, 600_000);

  afterAll(async () => {
    hostServer?.close();
    await kube?.stop();
    engine?.stop();
  }, 120_000);

  it('when a pod is created, then its container really runs: Succeeded with exit code 0, and its output comes back through the API server', async () => {
    await kube!.kubectl(['apply', '-f', '-'], pythonPod('sum', 'import numpy, os; print(int(numpy.arange(10).sum()), os.getuid())'));
    const pod = await kube!.waitForPod(NS, 'sum', ended, 90_000);
    expect(pod.spec.nodeName).toBe(kube!.nodeName);
    expect(pod.status?.phase).toBe('Succeeded');
    expect(terminatedOf(pod)).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect((await kube!.kubectl(['-n', NS, 'logs', 'sum'])).trim()).toBe('45 1000');
  }, 120_000);

  it('when a container goes past its memory limit, then the kernel kills it and the pod says OOMKilled, exit code 137', async () => {
    await kube!.kubectl(['apply', '-f', '-'], pythonPod('hog', 'b = bytearray(400 * 1024 * 1024); print(len(b))', { memory: '64Mi' }));
    const pod = await kube!.waitForPod(NS, 'hog', ended, 90_000);
    expect(pod.status?.phase).toBe('Failed');
    expect(terminatedOf(pod)).toMatchObject({ exitCode: 137, reason: 'OOMKilled' });
  }, 120_000);

  it('when a NetworkPolicy denies a pod all egress, then once the network gate has let it start it reaches neither another pod nor the host, while a pod without one reaches both', async () => {
    // a server pod, then the policy, then the two clients: each tries the server pod and the host once (3 s timeout).
    // The policy holds only once kube-router has seen the pod's address (about a second after it starts), hence the gate.
    await kube!.kubectl(
      ['apply', '-f', '-'],
      pythonPod('server', 'import http.server as h; h.HTTPServer(("0.0.0.0", 8080), h.SimpleHTTPRequestHandler).serve_forever()', {
        labels: { app: 'server' },
      }),
    );
    const server = await kube!.waitForPod(NS, 'server', (p) => p.status?.phase === 'Running' && !!p.status.podIP, 90_000);
    await kube!.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'locked', namespace: NS },
        spec: { podSelector: { matchLabels: { locked: 'true' } }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] },
      }),
    );
    const probe = (url: string): string =>
      `import urllib.request\ntry:\n  urllib.request.urlopen("${url}", timeout=3).read(); print("reached")\nexcept Exception as e:\n  print("blocked")`;
    const code = [probe(`http://${server.status!.podIP}:8080/`), probe(`http://${kube!.realNode!.gateway}:${hostPort}/`)].join('\n');
    await kube!.kubectl(['apply', '-f', '-'], pythonPod('open', code));
    await kube!.kubectl(['apply', '-f', '-'], pythonPod('locked', code, { labels: { locked: 'true' }, gate: true }));
    await kube!.waitForPod(NS, 'open', ended, 90_000);
    await kube!.waitForPod(NS, 'locked', ended, 90_000);
    expect((await kube!.kubectl(['-n', NS, 'logs', 'open'])).trim().split('\n')).toEqual(['reached', 'reached']);
    expect((await kube!.kubectl(['-n', NS, 'logs', 'locked'])).trim().split('\n')).toEqual(['blocked', 'blocked']);
    // the gate saw the network cut (it says how many dials were answered before)
    expect(await kube!.kubectl(['-n', NS, 'logs', 'locked', '-c', 'network-gate'])).toMatch(/^network cut \(10\.213\.0\.1:\d+ answered \d+ dials first\)/);
  }, 180_000);

  it('when a pod dials a Service by its name, then CoreDNS resolves it and kube-proxy carries it to the pod behind it', async () => {
    await kube!.kubectl(
      ['apply', '-f', '-'],
      pythonPod('echo', 'import http.server as h; h.HTTPServer(("0.0.0.0", 8080), h.SimpleHTTPRequestHandler).serve_forever()', { labels: { app: 'echo' } }),
    );
    await kube!.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'echo', namespace: NS },
        spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080 }] },
      }),
    );
    await kube!.waitForPod(NS, 'echo', (p) => p.status?.phase === 'Running', 90_000);
    const clusterIP = (await kube!.kubectl(['-n', NS, 'get', 'service', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const code = [
      'import socket, urllib.request, time',
      'for i in range(40):',
      '  try:',
      '    print(socket.gethostbyname("echo"), urllib.request.urlopen("http://echo/", timeout=2).status); break',
      '  except Exception as e:',
      '    time.sleep(0.5)',
      'else:',
      '  print("unreachable")',
    ].join('\n');
    await kube!.kubectl(['apply', '-f', '-'], pythonPod('client', code));
    await kube!.waitForPod(NS, 'client', ended, 90_000);
    expect((await kube!.kubectl(['-n', NS, 'logs', 'client'])).trim()).toBe(`${clusterIP} 200`);
  }, 180_000);

  it('when the node stops, then the host is as it was: sysctls, links, network namespaces, nftables, ipsets, cgroups, mounts, no container left', async () => {
    expect(hostSnapshot()).not.toEqual(before); // it did change things while it ran
    await kube!.stop();
    kube = undefined;
    const after = hostSnapshot();
    expect((after.links as string[]).includes(BRIDGE)).toBe(false);
    expect(after).toEqual(before);
  }, 120_000);
});
