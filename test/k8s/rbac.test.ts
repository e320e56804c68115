/**
 * k8s/base/worker-rbac.yaml and api-rbac.yaml applied to a real API server: the worker's ServiceAccount,
 * authenticating with its own token, may do exactly what the kubernetes backend needs in c2d-compute and
 * nothing else; the API's may only follow job logs there (SelfSubjectAccessReview and
 * SelfSubjectRulesReview asked by each ServiceAccount itself; a few refused calls made for real).
 */
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { type BackendCluster, NAMESPACE, startBackendCluster } from './backend-cluster';

let cluster: BackendCluster;
type Account = { authz: k8s.AuthorizationV1Api; core: k8s.CoreV1Api };
let worker: Account;
let api: Account;
beforeAll(async () => {
  cluster = await startBackendCluster();
  const lib = await import('@kubernetes/client-node');
  const account = (file: string): Account => {
    const kc = new lib.KubeConfig();
    kc.loadFromFile(file);
    return { authz: kc.makeApiClient(lib.AuthorizationV1Api), core: kc.makeApiClient(lib.CoreV1Api) };
  };
  worker = account(cluster.workerKubeconfig);
  api = account(cluster.apiKubeconfig);
}, 180_000);
afterAll(async () => {
  if (cluster) await cluster.stop();
});

interface Check {
  verb: string;
  resource: string;
  subresource?: string;
  group?: string;
  namespace?: string;
}

const describeCheck = (c: Check): string =>
  `${c.verb} ${c.group ? `${c.group}/` : ''}${c.resource}${c.subresource ? `/${c.subresource}` : ''} in ${c.namespace ?? 'the cluster'}`;

async function allowed(c: Check, who: Account = worker): Promise<boolean> {
  const review = await who.authz.createSelfSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: c.verb, resource: c.resource, subresource: c.subresource, group: c.group ?? '', namespace: c.namespace } },
    },
  });
  return review.status?.allowed === true;
}

/** Everything the backend does (src/compute/kubernetes), in the compute namespace. */
const needed: Check[] = [
  { verb: 'create', resource: 'configmaps' },
  { verb: 'get', resource: 'configmaps' },
  { verb: 'delete', resource: 'configmaps' },
  { verb: 'create', resource: 'secrets' },
  { verb: 'delete', resource: 'secrets' },
  { verb: 'create', resource: 'persistentvolumeclaims' },
  { verb: 'create', resource: 'pods' },
  { verb: 'list', resource: 'pods' },
  { verb: 'watch', resource: 'pods' },
  { verb: 'delete', resource: 'pods' },
  { verb: 'get', resource: 'pods', subresource: 'log' },
  { verb: 'create', resource: 'networkpolicies', group: 'networking.k8s.io' },
].map((c) => ({ ...c, namespace: NAMESPACE }));

const refused: Check[] = [
  // reading secrets back, changing or entering pods, widening its own rights
  ...['get', 'list', 'watch', 'update', 'patch'].map((verb) => ({ verb, resource: 'secrets', namespace: NAMESPACE })),
  ...['get', 'update', 'patch', 'deletecollection'].map((verb) => ({ verb, resource: 'pods', namespace: NAMESPACE })),
  ...['exec', 'attach', 'portforward', 'ephemeralcontainers', 'status'].map((subresource) => ({
    verb: 'create',
    resource: 'pods',
    subresource,
    namespace: NAMESPACE,
  })),
  { verb: 'update', resource: 'pods', subresource: 'status', namespace: NAMESPACE },
  { verb: 'list', resource: 'configmaps', namespace: NAMESPACE },
  { verb: 'update', resource: 'configmaps', namespace: NAMESPACE },
  { verb: 'delete', resource: 'persistentvolumeclaims', namespace: NAMESPACE },
  { verb: 'get', resource: 'persistentvolumeclaims', namespace: NAMESPACE },
  { verb: 'delete', resource: 'networkpolicies', group: 'networking.k8s.io', namespace: NAMESPACE },
  { verb: 'update', resource: 'networkpolicies', group: 'networking.k8s.io', namespace: NAMESPACE },
  { verb: 'create', resource: 'serviceaccounts', namespace: NAMESPACE },
  { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NAMESPACE },
  { verb: 'create', resource: 'roles', group: 'rbac.authorization.k8s.io', namespace: NAMESPACE },
  { verb: 'create', resource: 'rolebindings', group: 'rbac.authorization.k8s.io', namespace: NAMESPACE },
  { verb: 'escalate', resource: 'roles', group: 'rbac.authorization.k8s.io', namespace: NAMESPACE },
  { verb: 'create', resource: 'deployments', group: 'apps', namespace: NAMESPACE },
  { verb: 'create', resource: 'jobs', group: 'batch', namespace: NAMESPACE },
  // anything in another namespace
  { verb: 'create', resource: 'pods', namespace: 'c2d-provider' },
  { verb: 'list', resource: 'pods', namespace: 'c2d-provider' },
  { verb: 'get', resource: 'secrets', namespace: 'c2d-provider' },
  { verb: 'create', resource: 'pods', namespace: 'default' },
  { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
  // anything cluster-wide
  { verb: 'list', resource: 'pods' },
  { verb: 'list', resource: 'namespaces' },
  { verb: 'create', resource: 'namespaces' },
  { verb: 'list', resource: 'nodes' },
  { verb: 'create', resource: 'persistentvolumes' },
  { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' },
  { verb: 'impersonate', resource: 'serviceaccounts' },
];

/** What a ServiceAccount may do in a namespace, as `verb group/resource` lines, sorted. */
async function rulesOf(who: Account, namespace: string): Promise<string[]> {
  const review = await who.authz.createSelfSubjectRulesReview({
    body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } },
  });
  return (review.status?.resourceRules ?? [])
    .flatMap((r) =>
      r.apiGroups!.flatMap((g) =>
        (r.resources ?? []).flatMap((res) =>
          r.verbs.map((v) => `${v} ${g ? `${g}/` : ''}${res}${r.resourceNames?.length ? `:${r.resourceNames.join(',')}` : ''}`),
        ),
      ),
    )
    .sort();
}

describe('the API ServiceAccount (k8s/base/api-rbac.yaml)', () => {
  const apiNeeds: Check[] = [
    { verb: 'list', resource: 'pods', namespace: NAMESPACE },
    { verb: 'watch', resource: 'pods', namespace: NAMESPACE },
    { verb: 'get', resource: 'pods', subresource: 'log', namespace: NAMESPACE },
  ];
  const apiRefused: Check[] = [
    ...['create', 'delete', 'update', 'patch'].map((verb) => ({ verb, resource: 'pods', namespace: NAMESPACE })),
    ...['get', 'list', 'create', 'delete'].map((verb) => ({ verb, resource: 'secrets', namespace: NAMESPACE })),
    { verb: 'create', resource: 'pods', subresource: 'exec', namespace: NAMESPACE },
    { verb: 'create', resource: 'configmaps', namespace: NAMESPACE },
    { verb: 'delete', resource: 'configmaps', namespace: NAMESPACE },
    { verb: 'create', resource: 'networkpolicies', group: 'networking.k8s.io', namespace: NAMESPACE },
    { verb: 'list', resource: 'pods', namespace: 'c2d-provider' },
    { verb: 'get', resource: 'secrets', namespace: 'c2d-provider' },
    { verb: 'list', resource: 'pods' },
  ];

  it.each(apiNeeds.map((c) => [describeCheck(c), c] as const))('when it asks to %s, then it may', async (_, c) => {
    expect(await allowed(c, api)).toBe(true);
  });

  it.each(apiRefused.map((c) => [describeCheck(c), c] as const))('when it asks to %s, then it is refused', async (_, c) => {
    expect(await allowed(c, api)).toBe(false);
  });

  it('when it lists its rules, then the compute namespace grants only reading pods and their logs, and its own namespace nothing', async () => {
    const everyone = await rulesOf(api, 'default');
    expect(await rulesOf(api, 'c2d-provider')).toEqual(everyone);
    expect((await rulesOf(api, NAMESPACE)).filter((r) => !everyone.includes(r))).toEqual(['get pods/log', 'list pods', 'watch pods']);
  });
});

describe('the worker ServiceAccount (k8s/base/worker-rbac.yaml)', () => {
  it.each(needed.map((c) => [describeCheck(c), c] as const))('when it asks to %s, then it may', async (_, c) => {
    expect(await allowed(c)).toBe(true);
  });

  it.each(refused.map((c) => [describeCheck(c), c] as const))('when it asks to %s, then it is refused', async (_, c) => {
    expect(await allowed(c)).toBe(false);
  });

  it("when it lists its rules, then the compute namespace grants exactly the backend's rights beyond what every account has, and other namespaces nothing", async () => {
    const rules = (namespace: string) => rulesOf(worker, namespace);
    const everyone = await rules('default'); // what any authenticated account may do (self reviews)
    expect(everyone).toContain('create authorization.k8s.io/selfsubjectaccessreviews');
    expect(everyone.every((r) => /^create (authorization|authentication)\.k8s\.io\/self/.test(r))).toBe(true);
    expect(await rules('c2d-provider')).toEqual(everyone);
    const compute = (await rules(NAMESPACE)).filter((r) => !everyone.includes(r));
    expect(compute).toEqual(
      [
        'create configmaps',
        'get configmaps',
        'delete configmaps',
        'create secrets',
        'delete secrets',
        'create persistentvolumeclaims',
        'create pods',
        'list pods',
        'watch pods',
        'delete pods',
        'get pods/log',
        'create networking.k8s.io/networkpolicies',
      ].sort(),
    );
  });

  it('when it tries to read a Secret or list pods outside its namespace for real, then the API server answers 403', async () => {
    await cluster.kube.kubectl(['create', 'secret', 'generic', 'not-for-the-worker', '-n', NAMESPACE, '--from-literal=k=v']);
    await expect(worker.core.readNamespacedSecret({ name: 'not-for-the-worker', namespace: NAMESPACE })).rejects.toMatchObject({ code: 403 });
    await expect(worker.core.listNamespacedPod({ namespace: 'c2d-provider' })).rejects.toMatchObject({ code: 403 });
    await expect(worker.core.listNamespace()).rejects.toMatchObject({ code: 403 });
  });
});
