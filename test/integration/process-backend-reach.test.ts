import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProcessBackend } from '../../src/compute/process/backend';
import { defaultRuntimes } from '../../src/config';
import { DEFAULT_UID_RANGE } from '../../src/compute/process/job-uids';
import { seccompProgram } from '../../src/compute/process/seccomp';
import { hooks, newJobId, readAll, silentLogger, testEnvironment, testSandbox } from '../helpers/process-backend';

const repo = path.resolve(__dirname, '../..');
const root = process.getuid?.() === 0;

/**
 * A clone in root's 0700 home (`git clone … ~/c2d`): the compiled programs, the data dir and even
 * node (nvm) inside a directory the sandbox uids cannot traverse. The worker must place what the
 * sandbox needs where those uids reach it, without opening the home.
 */
describe('process backend: a clone the sandbox uid cannot reach', () => {
  let home: string;
  let stageRoot: string;
  let backend: ProcessBackend;
  const jobId = newJobId();

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-home-'));
    fs.chmodSync(home, 0o700);
    const clone = path.join(home, 'c2d');
    fs.cpSync(path.join(repo, 'dist', 'src'), path.join(clone, 'dist', 'src'), { recursive: true });
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(clone, 'node_modules')); // the supervisor loads zod
    const node = path.join(home, '.nvm', 'bin', 'node');
    fs.mkdirSync(path.dirname(node), { recursive: true });
    // nvm's own copy; a hard link where we may (root), a copy where the kernel's protected_hardlinks refuses one
    try {
      fs.linkSync(fs.realpathSync(process.execPath), node);
    } catch {
      fs.copyFileSync(fs.realpathSync(process.execPath), node);
      fs.chmodSync(node, 0o755);
    }
    stageRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-stage-'));
    fs.rmSync(stageRoot, { recursive: true }); // the backend creates it, as it would /var/lib/c2d
    backend = new ProcessBackend({
      dataDir: path.join(clone, '.c2d-data'),
      runtimes: defaultRuntimes(node),
      sandbox: testSandbox,
      uidSlotsDir: path.join(stageRoot, 'sandbox-uids'),
      programsDir: path.join(clone, 'dist', 'src', 'entrypoints'),
      node,
      stageRoot,
      logger: silentLogger,
    });
  });

  afterAll(async () => {
    await backend?.cleanup(jobId);
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(stageRoot, { recursive: true, force: true });
  });

  test('when a job runs all three steps, then they succeed (the algorithm as the sandbox uid) and the 0700 home stays closed', async () => {
    const environment = testEnvironment();
    const code = `require('fs').writeFileSync('/data/outputs/result.txt', 'ran as ' + process.getuid())`;
    const configure = await backend.runStep(
      { jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } },
      hooks(),
    );
    expect(configure).toMatchObject({ exitCode: 0, reason: '' });
    const algorithm = await backend.runStep(
      {
        jobId,
        environment,
        step: 'algorithm',
        algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
      },
      hooks(),
    );
    expect(algorithm).toMatchObject({ exitCode: 0, reason: '', oomKilled: false });
    const publish = await backend.runStep({ jobId, environment, step: 'publish' }, hooks());
    expect(publish).toMatchObject({ exitCode: 0, reason: '' });

    const published = await backend.listPublished(jobId);
    const result = published.find((f) => f.filename === 'result.txt');
    expect(result).toBeDefined();
    expect(await readAll(result!.open())).toBe('ran as 1000'); // the sandbox's own uid inside its user namespace
    expect(published.map((f) => f.filename)).toEqual(['result.txt', 'algorithm.log', 'configure.log', 'publish.log']);

    // every step was handed the seccomp filter
    for (const step of ['configure', 'algorithm', 'publish'])
      expect(fs.readFileSync(path.join(backend.paths.workDir, 'jobs', jobId, 'steps', step, 'seccomp.bpf'))).toEqual(seccompProgram());
    const outputs = path.join(backend.paths.workDir, 'jobs', jobId, 'data', 'outputs');
    // as root the job's own uid from the sandbox range; else the worker's
    const uid = backend.jobUid(jobId);
    if (root) expect(uid).toBeGreaterThanOrEqual(DEFAULT_UID_RANGE.base);
    expect(fs.statSync(path.join(outputs, 'result.txt')).uid).toBe(root ? uid : process.getuid?.());
    expect(fs.statSync(home).mode & 0o777).toBe(0o700);
    if (root) {
      // job workspaces and the sandboxed programs live in the root-owned 0711 stage dir
      expect(backend.paths.stageDir).toBeDefined();
      expect(path.dirname(backend.paths.stageDir!)).toBe(stageRoot);
      expect(backend.paths.workDir).toBe(backend.paths.stageDir);
      expect(backend.paths.programsDir).toBe(path.join(backend.paths.stageDir!, 'programs'));
      expect(fs.statSync(backend.paths.stageDir!).mode & 0o777).toBe(0o711);
      expect(fs.existsSync(path.join(backend.paths.stageDir!, 'node', 'bin', 'node'))).toBe(true);
    } else {
      // not root: the steps run as the worker's own user, which reaches its own home
      expect(backend.paths.stageDir).toBeUndefined();
      expect(backend.paths.workDir).toBe(path.join(home, 'c2d', '.c2d-data'));
    }
  });
});
