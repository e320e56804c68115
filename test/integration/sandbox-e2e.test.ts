import type { ProviderClient } from '../../src/client/provider-client';
import { describeOnBackends, type SuiteBackend } from '../helpers/backends';
import { testState } from '../helpers/state';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText } from './helpers';

/**
 * What a hostile algorithm can reach, through the whole stack: each attempt is contained and reported,
 * on the process sandbox and on real containers of the docker backend alike (the same jobs, the same assertions).
 */
describeOnBackends(
  {},
  (name) => `the algorithm sandbox, end to end, on the ${name} backend`,
  (backend: SuiteBackend) => {
    let stack: Stack;
    let data: Awaited<ReturnType<typeof serveFiles>>;
    let client: ProviderClient;
    let dataset: string;

    beforeAll(async () => {
      await backend.setup();
      data = await serveFiles({ 'secret.csv': 'name,salary\nalice,100\n' });
      stack = await startStack({
        environments: [
          backend.environment({ id: 'sbx', maxJobs: 4, ramGB: 0.25, maxJobDuration: 120, maxProcesses: 64 }),
          // room enough that the bombs' process table, not memory, is what fills up: the deadline must be what ends them
          backend.environment({ id: 'sbx-short', maxJobs: 2, ramGB: 1, maxJobDuration: 4, maxProcesses: 64 }),
        ],
      });
      client = stack.consumer();
      dataset = await stack.publish(client, { type: 'dataset', name: 'secret', urls: [data.url('secret.csv')], compute: { allowRawAlgorithm: true } });
    }, 600_000);

    afterAll(async () => {
      await stack?.stop();
      data?.close();
      backend.teardown();
    });

    const start = (env: string, code: string, entrypoint?: string) => {
      const algorithm = backend.nodeRaw(code);
      if (entrypoint) algorithm.meta.container.entrypoint = entrypoint;
      return client.startJob({ environment: env, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
    };
    const run = async (env: string, code: string, entrypoint?: string) => client.waitForJob((await start(env, code, entrypoint)).jobId, { timeoutMs: 60_000 });

    it('when the algorithm dials the test server, the API and Temporal on the host loopback, then every dial fails and it sees only lo', async () => {
      const targets = [new URL(data.url('x')).port, new URL(stack.baseUrl).port, testState().temporalAddress.split(':')[1]];
      const done = await run(
        'sbx',
        `
      const net = require('net'); const fs = require('fs');
      const dial = (port) => new Promise((res) => { const s = net.connect(Number(port), '127.0.0.1');
        s.once('connect', () => { s.destroy(); res('connected'); }); s.once('error', (e) => res(e.code)); setTimeout(() => res('timeout'), 2000); });
      (async () => {
        const out = { dials: [], interfaces: Object.keys(require('os').networkInterfaces()) };
        for (const p of ${JSON.stringify(targets)}) out.dials.push(await dial(p));
        fs.writeFileSync('/data/outputs/net.json', JSON.stringify(out));
      })();`,
      );
      expect(done.status).toBe(70);
      const report = JSON.parse(await resultText(client, done, 'net.json'));
      expect(report.interfaces).toEqual(['lo']);
      expect(report.dials).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']); // its own empty loopback
    });

    it('when the algorithm writes its inputs, or looks for the provider key, the data dir or other jobs, then it finds nothing', async () => {
      const done = await run(
        'sbx',
        `
      const fs = require('fs'); const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');
      const attempt = (f) => { try { return f() ?? 'ok'; } catch (e) { return e.code; } };
      const out = {
        writeInput: attempt(() => fs.writeFileSync('/data/inputs/' + dir + '/0', 'x')),
        newInput: attempt(() => fs.writeFileSync('/data/inputs/' + dir + '/new', 'x')),
        read: fs.readFileSync('/data/inputs/' + dir + '/0', 'utf8'),
        dataDir: attempt(() => fs.readdirSync(${JSON.stringify(stack.dataDir)})),
        jobsDir: attempt(() => fs.readdirSync(${JSON.stringify(`${stack.dataDir}/jobs`)})),
        env: Object.keys(process.env).sort(),
        proc1: attempt(() => fs.readFileSync('/proc/1/environ', 'utf8')),
        procs: fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).length,
        uid: process.getuid(),
      };
      fs.writeFileSync('/data/outputs/fs.json', JSON.stringify(out));`,
      );
      expect(done.status).toBe(70);
      const text = await resultText(client, done, 'fs.json');
      expect(text).not.toContain(stack.providerWallet.privateKey.slice(2));
      const report = JSON.parse(text);
      expect(['EROFS', 'EACCES']).toContain(report.writeInput);
      expect(['EROFS', 'EACCES']).toContain(report.newInput);
      expect(report.read).toBe('name,salary\nalice,100\n');
      expect(report.dataDir).toBe('ENOENT');
      expect(report.jobsDir).toBe('ENOENT');
      expect(report.env).not.toEqual(expect.arrayContaining([expect.stringMatching(/^C2D_|KEY|TEMPORAL/)]));
      expect(report.procs).toBeLessThanOrEqual(3);
      expect(report.uid).not.toBe(0);
    });

    // Our own filter belongs to the process sandbox (bwrap --seccomp). A container runs under its engine's
    // default profile instead, which docker-jobs checks (Seccomp: 2) and which allows ptrace: so this test is
    // defined for the process backend only (not skipped elsewhere: it does not describe them).
    const processOnly = backend.name === 'process' ? it : (): void => undefined;
    processOnly(
      'when a python algorithm calls ptrace, mount, keyctl, unshare, bpf or the x32 ABI, then the seccomp filter refuses each and ordinary work still runs',
      async () => {
        // raw system calls through ctypes (x86_64 and aarch64 numbers), the answers and /proc/self/status into an output
        const code = [
          'import ctypes, json, os, platform, threading, subprocess',
          'libc = ctypes.CDLL(None, use_errno=True)',
          'libc.syscall.restype = ctypes.c_long',
          'x86 = platform.machine() == "x86_64"',
          'def call(x86_nr, arm_nr, *args):',
          '    r = libc.syscall(x86_nr if x86 else arm_nr, *args)',
          '    return "ok" if r >= 0 else os.strerror(ctypes.get_errno())',
          'out = {',
          '    "ptrace": call(101, 117, 0, 0, 0, 0),',
          '    "mount": call(165, 40, b"none", b"/tmp", b"tmpfs", 0, 0),',
          '    "keyctl": call(250, 219, 0, 0, 0),',
          '    "unshare": call(272, 97, 0x10000000),',
          '    "bpf": call(321, 280, 0, 0, 0),',
          '    "x32": call(0x40000000 | 39, 172) if x86 else "Function not implemented",',
          '    "getpid": call(39, 172),',
          '    "status": dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if l.startswith("Seccomp") or l.startswith("NoNewPrivs")),',
          '    "fds": {fd: os.readlink("/proc/self/fd/" + fd) for fd in os.listdir("/proc/self/fd") if os.path.exists("/proc/self/fd/" + fd)},',
          '}',
          't = threading.Thread(target=lambda: out.update(thread="ok")); t.start(); t.join()',
          'out["child"] = subprocess.run(["sh", "-c", "echo forked"], capture_output=True, text=True).stdout.strip()',
          'open("/data/outputs/seccomp.json", "w").write(json.dumps(out))',
        ].join('\n');
        const algorithm = {
          meta: { rawcode: code, container: { entrypoint: 'python3 $ALGO', image: 'python', tag: '3', checksum: `sha256:${'b'.repeat(64)}` } },
        };
        const started = await client.startJob({ environment: 'sbx', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
        const done = await client.waitForJob(started.jobId, { timeoutMs: 60_000 });
        expect(done.status).toBe(70);
        const report = JSON.parse(await resultText(client, done, 'seccomp.json'));
        expect(report).toMatchObject({
          ptrace: 'Operation not permitted',
          mount: 'Operation not permitted',
          keyctl: 'Operation not permitted',
          unshare: 'Operation not permitted',
          bpf: 'Operation not permitted',
          x32: 'Function not implemented',
          getpid: 'ok',
          thread: 'ok',
          child: 'forked',
        });
        // mode 2: a filter; one of them (bwrap's); no privileges to gain
        expect(report.status).toEqual({ Seccomp: '2', Seccomp_filters: '1', NoNewPrivs: '1' });
        // bwrap closed the descriptor it read the filter from
        expect(Object.keys(report.fds)).not.toContain('9');
        expect(Object.values(report.fds).filter((t) => String(t).includes('seccomp'))).toEqual([]);
      },
    );

    it('when the algorithm exhausts memory, then it is OOM-killed and reported as such', async () => {
      const done = await run('sbx', 'const a = []; for (;;) a.push(Buffer.alloc(16 << 20, 1));');
      expect(done.status).toBe(41);
      expect(done.terminationDetails).toMatchObject({ oomKilled: true });
    });

    it('when one algorithm fork-bombs and another loops forever, then both are stopped at the deadline and a normal job beside them finishes', async () => {
      // one consumer signs with increasing nonces, so the starts go one after another; the jobs then run together
      // the shell itself forks once, first (the bomb runs in a background child: a backgrounded pipeline would make the
      // shell fork twice, and on a loaded machine the bomb fills the process table in between, so the shell failed to fork
      // and exited 2), then spins on builtins, so a process table full of bombs cannot make it exit before the deadline
      const bomb = await start('sbx-short', '// the entrypoint is the bomb', 'f() { f | f & }; f & while :; do :; done');
      const loop = await start('sbx-short', 'for (;;) {}');
      const normal = await start('sbx', "require('fs').writeFileSync('/data/outputs/ok.txt', 'fine')");
      const wait = (j: { jobId: string }) => client.waitForJob(j.jobId, { timeoutMs: 60_000 });
      const [b, l, n] = await Promise.all([wait(bomb), wait(loop), wait(normal)]);
      expect(n.status).toBe(70);
      expect(await resultText(client, n, 'ok.txt')).toBe('fine');
      for (const j of [b, l]) {
        // the whole ending in the message, should it ever be another one
        expect({ stopreq: j.stopreq, status: j.status, terminationDetails: j.terminationDetails }).toMatchObject({ stopreq: 2 });
        expect(await backend.leftovers(j.jobId)).toEqual([]);
      }
    }, 90_000);
  },
);
