import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cgroupLimitWrites, createStepCgroups, detectCgroups, oomKills, stepCgroupDirs } from '../../src/compute/process/cgroups';

const limits = { memoryBytes: 0.25 * 1024 ** 3, cpus: 1.5, maxProcesses: 64 };

describe('cgroupLimitWrites', () => {
  test.each([
    [
      1 as const,
      [
        ['memory/memory.limit_in_bytes', '268435456'],
        ['memory/memory.memsw.limit_in_bytes?', '268435456'],
        ['cpu/cpu.cfs_period_us', '100000'],
        ['cpu/cpu.cfs_quota_us', '150000'],
        ['pids/pids.max', '64'],
      ],
    ],
    [
      2 as const,
      [
        ['memory.max', '268435456'],
        ['memory.swap.max?', '0'],
        ['cpu.max', '150000 100000'],
        ['pids.max', '64'],
      ],
    ],
  ])('when the hierarchy is v%s, then memory, cpu and pids limits are written in a valid order', (version, want) => {
    expect(cgroupLimitWrites(version, limits)).toEqual(want);
  });

  test('when the cpu share is tiny, then the quota stays at the kernel minimum', () => {
    expect(cgroupLimitWrites(2, { ...limits, cpus: 0.001 })[2]).toEqual(['cpu.max', '1000 100000']);
  });
});

describe('cgroup tree handling (on a fake tree)', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-cg-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  test('when nothing is mounted, then detection fails saying what is missing', () => {
    expect(() => detectCgroups(root)).toThrow(/no usable cgroup hierarchy.*memory, cpu, pids/);
  });

  test('when v1 controllers are mounted, then v1 is detected with one dir per controller', () => {
    for (const c of ['memory', 'cpu', 'pids']) {
      fs.mkdirSync(path.join(root, c));
      fs.writeFileSync(path.join(root, c, 'cgroup.procs'), '');
    }
    const layout = detectCgroups(root);
    expect(layout).toEqual({ version: 1, memory: `${root}/memory`, cpu: `${root}/cpu`, pids: `${root}/pids` });
    expect(stepCgroupDirs(layout, 'j-algorithm')).toEqual([`${root}/memory/c2d/j-algorithm`, `${root}/cpu/c2d/j-algorithm`, `${root}/pids/c2d/j-algorithm`]);
  });

  test('when the unified tree is mounted, then v2 is detected, controllers enabled for c2d and limits written', () => {
    fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids');
    fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), 'memory');
    // a fake tree has no kernel to create c2d's control files: pre-create them
    fs.mkdirSync(path.join(root, 'c2d'));
    fs.writeFileSync(path.join(root, 'c2d', 'cgroup.controllers'), 'cpu memory pids');
    fs.writeFileSync(path.join(root, 'c2d', 'cgroup.subtree_control'), '');
    const layout = detectCgroups(root);
    expect(layout.version).toBe(2);
    const [dir] = createStepCgroups(layout, 'j-algorithm', limits);
    expect(dir).toBe(`${root}/c2d/j-algorithm`);
    expect(fs.readFileSync(path.join(root, 'c2d', 'j-algorithm', 'memory.max'), 'utf8')).toBe('268435456');
    expect(fs.readFileSync(path.join(root, 'c2d', 'j-algorithm', 'cpu.max'), 'utf8')).toBe('150000 100000');
    expect(fs.readFileSync(path.join(root, 'c2d', 'j-algorithm', 'pids.max'), 'utf8')).toBe('64');
    expect(fs.readFileSync(path.join(root, 'c2d', 'cgroup.subtree_control'), 'utf8')).toBe('+pids'); // last of the writes on a plain file
  });

  test('when a v2 controller is missing, then creation fails naming it', () => {
    fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpu memory');
    fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), '');
    expect(() => createStepCgroups(detectCgroups(root), 'x', limits)).toThrow(/controllers pids are not available/);
  });

  test.each([
    [1 as const, 'memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n', 2],
    [2 as const, 'memory.events', 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n', 1],
    [2 as const, 'memory.events', 'low 0\n', 0],
  ])('when reading OOM kills of a v%s cgroup, then the counter is parsed', (version, file, text, want) => {
    fs.writeFileSync(path.join(root, file), text);
    expect(oomKills(version, root)).toBe(want);
  });
});

describe("cgroupAccessProblem: can an ordinary user's worker create its job cgroups", () => {
  // root may write anywhere: as root the check runs as the sandbox uid, otherwise as ourselves
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? 65534 : (process.getuid?.() ?? 0);
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-cg-access-'));
    fs.chmodSync(root, 0o755);
    for (const c of ['memory', 'cpu', 'pids']) {
      fs.mkdirSync(path.join(root, c));
      fs.writeFileSync(path.join(root, c, 'cgroup.procs'), '');
    }
  });
  afterEach(() => {
    for (const c of ['memory', 'cpu', 'pids']) fs.chmodSync(path.join(root, c), 0o755);
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** a controller hierarchy this uid may not write, as /sys/fs/cgroup/<controller> is for an ordinary user */
  const lock = (c: string): void => fs.chmodSync(path.join(root, c), asRoot ? 0o755 : 0o555);
  /** what tools/delegate-cgroups.sh does: c2d made and handed to the user */
  const delegate = (c: string): void => {
    fs.mkdirSync(path.join(root, c, 'c2d'), { recursive: true });
    fs.chownSync(path.join(root, c, 'c2d'), uid, uid);
  };
  /** a copy of the built module (Node built-ins only) where the other uid can read it: the clone may sit in a 0700 home */
  let module: string;
  beforeAll(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-cg-module-'));
    fs.chmodSync(dir, 0o755);
    module = path.join(dir, 'cgroups.js');
    fs.copyFileSync(path.resolve('dist/src/compute/process/cgroups.js'), module); // built by npm test before jest
    fs.chmodSync(module, 0o644);
  });
  afterAll(() => fs.rmSync(path.dirname(module), { recursive: true, force: true }));
  const problem = (): string | null => {
    const code = `const c = require(${JSON.stringify(module)}); process.stdout.write(JSON.stringify(c.cgroupAccessProblem(c.detectCgroups(${JSON.stringify(root)}))))`;
    const out = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', ...(asRoot ? { uid, gid: uid } : {}) });
    return JSON.parse(out) as string | null;
  };

  it('when nobody delegated the c2d cgroup, then it names the hierarchy the worker cannot write', () => {
    for (const c of ['memory', 'cpu', 'pids']) lock(c);
    expect(problem()).toBe(`${path.join(root, 'memory')} is not writable by this worker's user`);
  });

  it('when c2d is delegated in every controller, then there is no problem', () => {
    for (const c of ['memory', 'cpu', 'pids']) {
      delegate(c);
      lock(c);
    }
    expect(problem()).toBeNull();
  });

  it('when one controller is left out, then it names that one', () => {
    for (const c of ['memory', 'cpu']) delegate(c);
    fs.mkdirSync(path.join(root, 'pids', 'c2d'));
    if (!asRoot) fs.chmodSync(path.join(root, 'pids', 'c2d'), 0o555);
    for (const c of ['memory', 'cpu', 'pids']) lock(c);
    expect(problem()).toBe(`${path.join(root, 'pids', 'c2d')} is not writable by this worker's user`);
  });
});
