import type { AddressInfo } from 'node:net';
import vm from 'node:vm';
import request from 'supertest';
import { serviceEndpoints } from '../../src/api/route';
import { routes } from '../../src/api/table';
import { type ApiHarness, apiHarness } from './harness';

describe('API: OpenAPI document, docs page, metrics, health and readiness', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness();
  });
  afterEach(() => h.cleanup());

  it('when a client fetches /api/openapi.json, then it describes every route of the API, generated from the request schemas', async () => {
    const res = await request(h.app).get('/api/openapi.json').expect(200).expect('content-type', /json/);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe('9.9.9-test');
    const methods = Object.fromEntries(Object.entries(doc.paths as Record<string, object>).map(([p, item]) => [p, Object.keys(item).sort()]));
    expect(methods).toMatchObject({
      '/': ['get'],
      '/api/services/nonce': ['get'],
      '/api/services/computeEnvironments': ['get'],
      '/api/services/encrypt': ['post'],
      '/api/services/compute': ['delete', 'get', 'post', 'put'],
      '/api/services/computeResult': ['get'],
      '/api/services/computeLogs': ['get'],
      '/healthz': ['get'],
      '/readyz': ['get'],
      '/metrics': ['get'],
    });
    const start = doc.paths['/api/services/compute'].post;
    const body = start.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['consumerAddress', 'signature', 'nonce', 'environment', 'dataset', 'algorithm']));
    expect(body.properties.consumerAddress.pattern).toBe('^0x[0-9a-fA-F]{40}$');
    // a nonce may be sent as a number or as text (input side of the schema, before it becomes the signed text)
    expect(body.properties.nonce.type).toEqual(['string', 'number']);
    // objects may arrive as JSON text
    expect(body.properties.dataset.anyOf).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'object' }), expect.objectContaining({ type: 'string', contentMediaType: 'application/json' })]),
    );
    type Param = { name: string; required: boolean };
    const resultParams = doc.paths['/api/services/computeResult'].get.parameters as Param[];
    // signature and nonce, or an auth token in the Authorization header (ocean-node's API)
    expect(resultParams.map((p) => [p.name, p.required]).sort()).toEqual([
      ['consumerAddress', true],
      ['index', true],
      ['jobId', true],
      ['nonce', false],
      ['signature', false],
    ]);
    const statusParams = doc.paths['/api/services/compute'].get.parameters as Param[];
    expect(statusParams.find((p) => p.name === 'jobId')?.required).toBe(false);
    // error shapes of the wire contract
    expect(start.responses['400'].content['application/json'].schema.anyOf).toEqual([
      { $ref: '#/components/schemas/ValidationError' },
      { $ref: '#/components/schemas/HandledError' },
    ]);
    expect(doc.components.schemas.ValidationError.required).toEqual(['message', 'errors', 'success']);
    expect(doc.components.schemas.Job.properties.results.anyOf).toHaveLength(2);
    // every $ref resolves
    for (const [, name] of JSON.stringify(doc).matchAll(/"#\/components\/schemas\/(\w+)"/g)) expect(doc.components.schemas).toHaveProperty(name!);
  });

  it('when an endpoint is published in the root document, then the OpenAPI document describes it with the same method', async () => {
    const doc = (await request(h.app).get('/api/openapi.json').expect(200)).body;
    const endpoints = serviceEndpoints(routes);
    expect(Object.keys(endpoints).sort()).toEqual([
      'computeDelete',
      'computeEnvironments',
      'computeLogs',
      'computeResult',
      'computeStart',
      'computeStatus',
      'computeStop',
      'computeStreamableLogs',
      'decrypt',
      'download',
      'encrypt',
      'fileinfo',
      'freeCompute',
      'generateAuthToken',
      'initializeCompute',
      'invalidateAuthToken',
      'nonce',
      'validateContainer',
    ]);
    for (const [name, [method, path]] of Object.entries(endpoints))
      expect([name, doc.paths[path]?.[method.toLowerCase()]?.operationId]).toEqual([name, expect.any(String)]);
    // ocean-node's form of a shared route is described inside the route it stands beside
    expect(doc.paths['/api/services/computeEnvironments'].get['x-ocean-node'].summary).toContain('ocean-node');
  });

  it('when a browser opens /api/docs, then it gets a self-contained page that loads nothing from elsewhere', async () => {
    const res = await request(h.app).get('/api/docs').expect(200).expect('content-type', /html/);
    expect(res.text).toContain("fetch('/api/openapi.json')");
    expect(res.text).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(res.text).not.toContain('innerHTML');
    expect(res.headers['content-security-policy']).toContain("connect-src 'self'");
  });

  it('when the docs page runs, then it renders a form per operation and its try-it-out calls the API', async () => {
    const html = (await request(h.app).get('/api/docs').expect(200)).text;
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? '';
    // just enough DOM for the page's script: elements that hold children, text, values and listeners
    interface El {
      tag: string;
      children: El[];
      textContent: string;
      value: string;
      placeholder: string;
      className: string;
      dataset: Record<string, string>;
      listeners: Record<string, (ev: unknown) => Promise<void>>;
      firstChild?: El;
      append(...c: El[]): void;
      addEventListener(t: string, f: (ev: unknown) => Promise<void>): void;
    }
    const element = (tag: string): El => {
      const el: El = {
        tag,
        children: [],
        textContent: '',
        value: '',
        placeholder: '',
        className: '',
        dataset: {},
        listeners: {},
        append: (...c) => {
          el.children.push(...c);
          el.firstChild = el.children[0];
        },
        addEventListener: (t, f) => {
          el.listeners[t] = f;
        },
      };
      return el;
    };
    const byId: Record<string, El> = { title: element('h1'), desc: element('p'), ops: element('div') };
    const server = h.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      vm.runInNewContext(script, {
        document: { createElement: element, getElementById: (id: string) => byId[id] },
        fetch: (url: string, init?: RequestInit) => fetch(base + url, init),
        URLSearchParams,
        JSON,
        Object,
        String,
        Array,
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(byId.title!.textContent).toBe('Compute-to-Data Provider 9.9.9-test');
      const boxes = byId.ops!.children;
      const operation = (method: string, path: string) =>
        boxes.find((b) => b.children[0]!.children[0]!.textContent === method && b.children[0]!.children[1]!.textContent.trim() === path)!;
      expect(boxes.length).toBeGreaterThanOrEqual(14);

      const nonce = operation('GET', '/api/services/nonce');
      const form = nonce.children.find((c) => c.tag === 'form')!;
      form.children[0]!.children[0]!.value = h.consumer.address;
      await form.listeners.submit!({ preventDefault: () => undefined });
      expect(nonce.children.find((c) => c.tag === 'pre')!.textContent).toMatch(/^200 OK\n\n\{"nonce":0\}/);

      // a body operation starts from a skeleton of the required fields, and a refusal shows the contract's error
      const start = operation('POST', '/api/services/compute');
      const startForm = start.children.find((c) => c.tag === 'form')!;
      const body = startForm.children.find((c) => c.tag === 'textarea')!;
      expect(Object.keys(JSON.parse(body.value) as object)).toEqual(['consumerAddress', 'signature', 'nonce', 'environment', 'dataset', 'algorithm']);
      await startForm.listeners.submit!({ preventDefault: () => undefined });
      expect(start.children.find((c) => c.tag === 'pre')!.textContent).toMatch(/^400 Bad Request\n\n\{"message":"Validation error"/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('when requests and a job start went through, then /metrics shows latency by route template, jobs started and slots by environment, and process metrics', async () => {
    await request(h.app).get('/api/services/nonce').query({ userAddress: h.consumer.address }).expect(200);
    const jobId = await h.startJob();
    h.jobs.set(jobId, { status: 40 });
    await h.startJob(); // a second job still waiting for a slot
    await request(h.app).get('/no/such/route-4711').expect(404);
    const res = await request(h.app)
      .get('/metrics')
      .expect(200)
      .expect('content-type', /text\/plain/);
    const text = res.text;
    expect(text).toMatch(/c2d_api_request_duration_seconds_count\{route="\/api\/services\/nonce",method="GET",status="200"\} 3/);
    expect(text).toMatch(/c2d_api_request_duration_seconds_count\{route="\/api\/services\/compute",method="POST",status="200"\} 2/);
    expect(text).toMatch(/c2d_api_request_duration_seconds_count\{route="unmatched",method="GET",status="404"\} 1/);
    expect(text).not.toContain('route-4711');
    expect(text).not.toContain(h.consumer.address);
    expect(text).toContain('c2d_jobs_started_total{environment="free"} 2');
    expect(text).toContain('c2d_environment_current_jobs{environment="free"} 1');
    expect(text).toContain('c2d_environment_queued_jobs{environment="free"} 1');
    expect(text).toContain('c2d_environment_max_jobs{environment="free"} 3');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('when a start is refused, then no job is counted as started', async () => {
    await request(h.app)
      .post('/api/services/compute')
      .send({ ...(await h.startBody(h.consumer)), signature: `0x${'1'.repeat(130)}` })
      .expect(401);
    const text = (await request(h.app).get('/metrics').expect(200)).text;
    expect(text).toContain('c2d_jobs_started_total{environment="free"} 0');
    // a request that failed inside its route still counts under the route's template
    expect(text).toMatch(/c2d_api_request_duration_seconds_count\{route="\/api\/services\/compute",method="POST",status="401"\} 1/);
  });

  it('when the process is up, then /healthz answers 200', async () => {
    expect((await request(h.app).get('/healthz').expect(200)).body).toEqual({ status: 'ok' });
  });

  it('when Temporal answers, then /readyz is 200; when it does not, then 503 with the reason', async () => {
    expect((await request(h.app).get('/readyz').expect(200)).body).toEqual({ status: 'ready', checks: { temporal: 'ok' } });
    h.temporal.reachable = false;
    expect((await request(h.app).get('/readyz').expect(503)).body).toEqual({ error: 'Temporal is unreachable', checks: { temporal: 'unreachable' } });
    h.temporal.reachable = true;
    await request(h.app).get('/readyz').expect(200);
  });
});
