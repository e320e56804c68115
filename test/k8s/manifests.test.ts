import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { loadConfig } from '../../src/config';
import { k8sBinDir } from '../../tools/k8s-control-plane';
import { searchAttributeFlags } from '../../src/workflows/search-attributes';
import { type Kube, startKube } from '../helpers/kube';

const exec = promisify(execFile);
const root = path.resolve(__dirname, '../..');
const overlays = ['dev', 'prod'] as const;

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  data?: Record<string, string>;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Container = any;

const settingNames = [...fs.readFileSync(path.join(root, 'src/config/index.ts'), 'utf8').matchAll(/^\s+(C2D_[A-Z0-9_]+):/gm)].map((m) => m[1]!);

describe('the k8s/ manifests', () => {
  const rendered: Record<string, { text: string; objects: Obj[] }> = {};
  const find = (o: string, kind: string, name: string, namespace?: string): Obj => {
    const hit = rendered[o]!.objects.find(
      (x) => x.kind === kind && x.metadata.name === name && (namespace === undefined || x.metadata.namespace === namespace),
    );
    if (!hit) throw new Error(`${o}: no ${kind} ${namespace ?? ''}/${name}`);
    return hit;
  };

  beforeAll(async () => {
    const kubectl = path.join(k8sBinDir(), 'kubectl');
    for (const o of overlays) {
      const { stdout } = await exec(kubectl, ['kustomize', path.join(root, 'k8s/overlays', o)], { maxBuffer: 16 * 1024 * 1024 });
      rendered[o] = { text: stdout, objects: YAML.parseAllDocuments(stdout).map((d) => d.toJSON() as Obj) };
    }
  }, 60_000);

  it.each(overlays)('when the %s overlay renders, then it has both namespaces, the API and worker Deployments and the API Service', (o) => {
    const { objects } = rendered[o]!;
    expect(
      objects
        .filter((x) => x.kind === 'Namespace')
        .map((x) => x.metadata.name)
        .sort(),
    ).toEqual(['c2d-compute', 'c2d-provider']);
    const api = find(o, 'Deployment', 'c2d-api', 'c2d-provider');
    find(o, 'Deployment', 'c2d-worker', 'c2d-provider');
    const svc = find(o, 'Service', 'c2d-api', 'c2d-provider');
    expect(svc.spec.selector).toEqual(api.spec.template.metadata.labels);
    // every namespaced object lands in one of ours
    expect(objects.filter((x) => x.metadata.namespace && !['c2d-provider', 'c2d-compute'].includes(x.metadata.namespace))).toEqual([]);
  });

  it.each(overlays)(
    'when the %s overlay renders, then every container has resources, drops all capabilities, runs non-root on a read-only root filesystem, and the API is probed on /healthz and /readyz',
    (o) => {
      for (const d of rendered[o]!.objects.filter((x) => x.kind === 'Deployment')) {
        const pod = d.spec.template.spec;
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        for (const c of pod.containers as Container[]) {
          expect(
            [d.metadata.name, c.resources.requests.cpu, c.resources.requests.memory, c.resources.limits.cpu, c.resources.limits.memory].every(Boolean),
          ).toBe(true);
          expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
          expect(c.readinessProbe).toBeDefined();
        }
      }
      const api = find(o, 'Deployment', 'c2d-api').spec.template.spec.containers[0];
      expect(api.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
      expect(api.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
      expect(api.ports).toContainEqual({ name: 'http', containerPort: Number(find(o, 'ConfigMap', 'c2d-settings').data!.C2D_API_PORT) });
    },
  );

  it.each(overlays)(
    'when the %s overlay renders, then its settings are real C2D_* settings that load, and its environments run in the compute namespace',
    (o) => {
      const settings = find(o, 'ConfigMap', 'c2d-settings').data!;
      expect(Object.keys(settings).filter((k) => !settingNames.includes(k))).toEqual([]);
      const envYaml = find(o, 'ConfigMap', 'c2d-environments').data!['environments.yaml']!;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-manifests-'));
      try {
        fs.writeFileSync(path.join(dir, 'environments.yaml'), envYaml);
        const config = loadConfig({ ...settings, C2D_DATA_DIR: dir, C2D_ENVIRONMENTS_FILE: path.join(dir, 'environments.yaml') });
        expect(config.environments.length).toBeGreaterThan(0);
        const envs = config.environments.filter((e) => e.backend === 'kubernetes');
        expect(envs).toHaveLength(config.environments.length);
        for (const env of envs) {
          expect(env.kubernetes.namespace).toBe('c2d-compute');
          find(o, 'PersistentVolumeClaim', env.kubernetes.resultsClaim, 'c2d-compute');
        }
        // the worker's results mount is where C2D_K8S_RESULTS_DIR says
        const worker = find(o, 'Deployment', 'c2d-worker').spec.template.spec;
        const mount = (worker.containers[0].volumeMounts as { name: string; mountPath: string }[]).find((m) => m.mountPath === settings.C2D_K8S_RESULTS_DIR);
        const volume = (worker.volumes as { name: string; persistentVolumeClaim?: { claimName: string } }[]).find((v) => v.name === mount?.name);
        expect(volume?.persistentVolumeClaim?.claimName).toBe(envs[0]!.kubernetes.resultsClaim);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.each(overlays)('when the %s overlay renders, then both results claims bind to PersistentVolumes of one storage', (o) => {
    const claims = rendered[o]!.objects.filter((x) => x.kind === 'PersistentVolumeClaim' && x.metadata.name === 'c2d-results');
    expect(claims.map((c) => c.metadata.namespace).sort()).toEqual(['c2d-compute', 'c2d-provider']);
    const sources = claims.map((c) => {
      const pv = find(o, 'PersistentVolume', c.spec.volumeName as string);
      expect(pv.spec.claimRef).toEqual({ namespace: c.metadata.namespace, name: c.metadata.name });
      return JSON.stringify(pv.spec.nfs ?? pv.spec.hostPath);
    });
    expect(sources[0]).toBe(sources[1]);
  });

  it.each(overlays)(
    'when the %s overlay renders, then the worker and the API run as their own ServiceAccounts, bound only inside the compute namespace (nothing cluster-wide)',
    (o) => {
      const { objects } = rendered[o]!;
      const sa = find(o, 'Deployment', 'c2d-worker').spec.template.spec.serviceAccountName as string;
      find(o, 'ServiceAccount', sa, 'c2d-provider');
      const bindings = objects.filter(
        (x) =>
          x.kind === 'RoleBinding' &&
          (x as unknown as { subjects: { kind: string; name: string }[] }).subjects.some((s) => s.kind === 'ServiceAccount' && s.name === sa),
      );
      expect(bindings.map((b) => b.metadata.namespace)).toEqual(['c2d-compute']);
      expect(objects.filter((x) => x.kind === 'ClusterRole' || x.kind === 'ClusterRoleBinding')).toEqual([]);
      // the API's own account is bound in the compute namespace only (it follows job logs there: api-rbac.yaml)
      const apiSa = find(o, 'Deployment', 'c2d-api').spec.template.spec.serviceAccountName as string;
      expect(apiSa).toBe('c2d-api');
      find(o, 'ServiceAccount', apiSa, 'c2d-provider');
      const apiBindings = objects.filter(
        (x) =>
          x.kind === 'RoleBinding' &&
          (x as unknown as { subjects: { kind: string; name: string }[] }).subjects.some((s) => s.kind === 'ServiceAccount' && s.name === apiSa),
      );
      expect(apiBindings.map((b) => b.metadata.namespace)).toEqual(['c2d-compute']);
    },
  );

  it.each(overlays)(
    'when the %s overlay renders, then the compute namespace denies all traffic by default and the provider namespace admits only the API port',
    (o) => {
      const policies = rendered[o]!.objects.filter((x) => x.kind === 'NetworkPolicy');
      const deny = policies.find((p) => p.metadata.namespace === 'c2d-compute' && Object.keys(p.spec.podSelector as object).length === 0);
      expect(deny?.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
      // nothing in c2d-compute admits ingress
      expect(policies.filter((p) => p.metadata.namespace === 'c2d-compute' && p.spec.ingress)).toEqual([]);
      // the algorithm step gets egress only through the backend's own label
      const egress = policies.filter((p) => p.metadata.namespace === 'c2d-compute' && p.spec.egress);
      expect(egress.map((p): unknown => p.spec.podSelector)).toEqual([
        { matchExpressions: [{ key: 'c2d.step', operator: 'In', values: ['configure'] }] },
        { matchLabels: { 'c2d.network': 'allowed' } },
      ]);
      const providerDeny = policies.find((p) => p.metadata.namespace === 'c2d-provider' && Object.keys(p.spec.podSelector as object).length === 0);
      expect(providerDeny?.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'] });
      const apiIngress = find(o, 'NetworkPolicy', 'api-ingress', 'c2d-provider');
      expect(apiIngress.spec.ingress).toEqual([{ ports: [{ protocol: 'TCP', port: 8030 }] }]);
    },
  );

  it('when the dev overlay renders, then the settings point at its in-cluster Temporal dev server, which has every search attribute the workflows use', () => {
    const temporal = find('dev', 'Deployment', 'temporal', 'c2d-provider').spec.template.spec.containers[0];
    const args = temporal.args as string[];
    expect(args.slice(0, 2)).toEqual(['server', 'start-dev']);
    for (const [name, type] of Object.entries(searchAttributeFlags)) expect(args).toContain(`--search-attribute=${name}=${type}`);
    const svc = find('dev', 'Service', 'temporal', 'c2d-provider');
    const grpc = (svc.spec.ports as { name: string; port: number }[]).find((p) => p.name === 'grpc')!;
    expect(find('dev', 'ConfigMap', 'c2d-settings').data!.C2D_TEMPORAL_ADDRESS).toBe(`${svc.metadata.name}:${grpc.port}`);
    // the provider namespace's default-deny ingress would cut API and worker off Temporal without this
    const allow = find('dev', 'NetworkPolicy', 'temporal-ingress', 'c2d-provider');
    expect(allow.spec.ingress[0].from[0].podSelector.matchExpressions[0].values).toEqual(['c2d-api', 'c2d-worker']);
  });

  it('when the prod overlay renders, then Temporal is external, API and worker run two replicas each and a PodDisruptionBudget keeps one of each', () => {
    expect(rendered.prod!.objects.filter((x) => x.metadata.name === 'temporal')).toEqual([]);
    expect(find('prod', 'ConfigMap', 'c2d-settings').data!.C2D_TEMPORAL_ADDRESS).not.toBe(find('dev', 'ConfigMap', 'c2d-settings').data!.C2D_TEMPORAL_ADDRESS);
    for (const name of ['c2d-api', 'c2d-worker']) {
      const d = find('prod', 'Deployment', name);
      expect(d.spec.replicas).toBe(2);
      const pdb = find('prod', 'PodDisruptionBudget', name, 'c2d-provider');
      expect(pdb.spec.minAvailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
    }
  });

  describe('against a real API server', () => {
    let kube: Kube;
    beforeAll(async () => {
      kube = await startKube();
    }, 180_000);
    afterAll(() => kube?.stop());

    it.each(overlays)('when the %s overlay is applied with server-side dry run, then the API server accepts every object', async (o) => {
      const { objects } = rendered[o]!;
      const namespaces = objects.filter((x) => x.kind === 'Namespace');
      // Namespaced objects need their namespace to exist, even in a dry run: create those for real first.
      await kube.kubectl(['apply', '--server-side', '-f', '-'], namespaces.map((n) => YAML.stringify(n)).join('---\n'));
      const out = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], rendered[o]!.text);
      const lines = out.trim().split('\n');
      expect(lines).toHaveLength(objects.length);
      expect(lines.every((l) => / (serverside-applied|unchanged) \(server dry run\)$/.test(l))).toBe(true);
    });

    it.each(overlays)(
      'when the pods of the %s overlay are created with server-side dry run, then Pod Security admission (restricted) accepts them in their namespaces',
      async (o) => {
        // The ServiceAccount admission plugin wants the pod's account to exist: create the overlay's accounts for real.
        const accounts = rendered[o]!.objects.filter((x) => x.kind === 'ServiceAccount');
        await kube.kubectl(['apply', '--server-side', '-f', '-'], accounts.map((a) => YAML.stringify(a)).join('---\n'));
        for (const d of rendered[o]!.objects.filter((x) => x.kind === 'Deployment')) {
          const pod = {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: `${d.metadata.name}-check`, namespace: d.metadata.namespace },
            spec: d.spec.template.spec,
          };
          const out = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], JSON.stringify(pod));
          expect(out.trim()).toBe(`pod/${d.metadata.name}-check created (server dry run)`);
        }
      },
    );
  });
});
