import { buildSandboxArgs, type SandboxOptions, wrapSandboxCommand } from '../../src/compute/process/sandbox-args';
import { jobPaths } from '../../src/compute/process/layout';
import { algorithmSandbox, configureSandbox, publishSandbox } from '../../src/compute/process/steps';

const job = jobPaths('/srv/c2d', 'a'.repeat(32));
const J = '/srv/c2d/jobs/' + 'a'.repeat(32);
const node = { command: '/usr/bin/node', names: ['node', 'nodejs'] };
const base = (o: Partial<SandboxOptions> = {}): SandboxOptions => ({
  tmpBytes: 1024,
  shareNetwork: false,
  binds: [],
  runtimes: [],
  env: {},
  chdir: '/data',
  command: ['/bin/true'],
  ...o,
});

/** pairs "--flag a b" as "flag a b" strings, for readable expectations */
const has = (args: string[], ...seq: string[]): boolean => args.some((_, i) => seq.every((s, j) => args[i + j] === s));

describe('buildSandboxArgs', () => {
  test('when no network is shared, then the argv isolates every namespace and starts from the base layout', () => {
    expect(buildSandboxArgs(base())).toEqual([
      '--unshare-user',
      '--uid',
      '1000',
      '--gid',
      '1000',
      '--disable-userns',
      '--unshare-ipc',
      '--unshare-pid',
      '--unshare-uts',
      '--unshare-cgroup',
      '--unshare-net',
      '--die-with-parent',
      '--new-session',
      '--ro-bind',
      '/usr',
      '/usr',
      '--symlink',
      'usr/lib',
      '/lib',
      '--symlink',
      'usr/lib64',
      '/lib64',
      '--symlink',
      'usr/bin',
      '/bin',
      '--ro-bind',
      '/etc/ld.so.cache',
      '/etc/ld.so.cache',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--size',
      '1024',
      '--tmpfs',
      '/tmp',
      '--chdir',
      '/data',
      '--clearenv',
      '/bin/true',
    ]);
  });

  test.each([
    ['a shared network', base({ shareNetwork: true }), (a: string[]) => !a.includes('--unshare-net')],
    [
      'a runtime under /usr',
      base({ runtimes: [node] }),
      (a: string[]) =>
        has(a, '--symlink', '/usr/bin/node', '/opt/c2d/bin/node') &&
        has(a, '--symlink', '/usr/bin/node', '/opt/c2d/bin/nodejs') &&
        !has(a, '--ro-bind', '/usr/bin'),
    ],
    [
      'a runtime outside /usr',
      base({ runtimes: [{ command: '/opt/node-20/bin/node', names: ['node'] }] }),
      (a: string[]) => has(a, '--ro-bind', '/opt/node-20', '/opt/node-20') && has(a, '--symlink', '/opt/node-20/bin/node', '/opt/c2d/bin/node'),
    ],
    ['a runtime name with a slash', base({ runtimes: [{ command: '/usr/bin/x', names: ['../evil'] }] }), (a: string[]) => !a.some((s) => s.includes('evil'))],
    [
      'a writable, a read-only and an optional bind',
      base({
        binds: [
          { src: '/h/o', dest: '/data/outputs', writable: true },
          { src: '/h/i', dest: '/data/inputs', writable: false },
          { src: '/etc/hosts', dest: '/etc/hosts', writable: false, optional: true },
        ],
      }),
      (a: string[]) =>
        has(a, '--bind', '/h/o', '/data/outputs') && has(a, '--ro-bind', '/h/i', '/data/inputs') && has(a, '--ro-bind-try', '/etc/hosts', '/etc/hosts'),
    ],
    [
      'env names that bwrap would misparse',
      base({ env: { OK: '1', 'BAD=X': '2', '1X': '3' } }),
      (a: string[]) => has(a, '--setenv', 'OK', '1') && !a.includes('BAD=X') && !a.includes('1X'),
    ],
  ])('when given %s, then the argv is right', (_name, opts, check) => {
    expect(check(buildSandboxArgs(opts))).toBe(true);
  });
});

describe('step sandboxes', () => {
  const container = { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' };

  test.each([
    [
      'algorithm without network',
      algorithmSandbox(job, { container, env: { DIDS: '[]', ALGO: '/elsewhere' }, allowNetwork: false }, node, 4096),
      {
        net: false,
        ro: [
          [`${J}/data/inputs`, '/data/inputs'],
          [`${J}/data/transformations`, '/data/transformations'],
          [`${J}/data/ddos`, '/data/ddos'],
        ],
        rw: [
          [`${J}/data/outputs`, '/data/outputs'],
          [`${J}/data/logs`, '/data/logs'],
        ],
        env: { DIDS: '[]', ALGO: '/data/transformations/algorithm', HOME: '/tmp', PATH: '/opt/c2d/bin:/usr/local/bin:/usr/bin:/bin' },
        command: ['/bin/sh', '-c', 'node $ALGO'],
      },
    ],
    [
      'algorithm with network (in its job namespace)',
      algorithmSandbox(job, { container, env: {}, allowNetwork: true }, node, 4096, '/run/netns/c2d-x'),
      { net: true, ro: [], rw: [], env: {}, command: ['/bin/sh', '-c', 'node $ALGO'] },
    ],
    [
      'configure',
      configureSandbox({ job, node, programsDir: '/repo/dist/src/entrypoints', reportFile: `${J}/steps/configure/report.json`, tmpBytes: 4096 }),
      {
        net: true,
        ro: [
          ['/repo/dist/src/entrypoints', '/opt/c2d/programs'],
          ['/repo/dist/src/net/guarded-fetch.js', '/opt/c2d/net/guarded-fetch.js'],
          ['/repo/dist/src/net/network-gate.js', '/opt/c2d/net/network-gate.js'],
          [`${J}/secret/configure.json`, '/run/c2d/configure.json'],
        ],
        rw: [
          [`${J}/data`, '/data'],
          [`${J}/steps/configure/report.json`, '/run/c2d/report.json'],
        ],
        env: { HOME: '/tmp' },
        command: ['/opt/c2d/bin/node', '/opt/c2d/programs/configure-step.js', '/run/c2d/configure.json', '/run/c2d/report.json'],
      },
    ],
    [
      'publish',
      publishSandbox(
        { job, node, programsDir: '/repo/dist/src/entrypoints', reportFile: `${J}/steps/publish/report.json`, tmpBytes: 4096 },
        { maxBytes: 1000, maxFiles: 10, withhold: false },
      ),
      {
        net: false,
        ro: [
          [`${J}/data/outputs`, '/data/outputs'],
          ['/repo/dist/src/entrypoints', '/opt/c2d/programs'],
        ],
        rw: [
          [`${J}/publish`, '/publish'],
          [`${J}/steps/publish/report.json`, '/run/c2d/report.json'],
        ],
        env: { HOME: '/tmp' },
        command: [
          '/opt/c2d/bin/node',
          '/opt/c2d/programs/publish-step.js',
          '/data/outputs',
          '/publish',
          '/run/c2d/report.json',
          '--max-bytes=1000',
          '--max-files=10',
        ],
      },
    ],
  ])('when building the %s sandbox, then it binds exactly what the step needs', (_name, sandbox, want) => {
    const args = buildSandboxArgs(sandbox);
    expect(args.includes('--unshare-net')).toBe(!want.net);
    for (const [src, dest] of want.ro) expect(has(args, '--ro-bind', src as string, dest as string)).toBe(true);
    for (const [src, dest] of want.rw) expect(has(args, '--bind', src as string, dest as string)).toBe(true);
    for (const [k, v] of Object.entries(want.env)) expect(has(args, '--setenv', k, v)).toBe(true);
    expect(args.slice(-want.command.length)).toEqual(want.command);
    // never the data dir itself, the job root, its logs or another job
    const sources = args.filter((_, i) => args[i - 1] === '--bind' || args[i - 1] === '--ro-bind' || args[i - 1] === '--ro-bind-try');
    for (const src of sources) expect([J, '/srv/c2d', '/srv/c2d/jobs', `${J}/logs`, `${J}/steps`]).not.toContain(src);
    // writable binds are only under the job
    const writable = args.filter((_, i) => args[i - 1] === '--bind');
    for (const src of writable) expect(src.startsWith(`${J}/`)).toBe(true);
  });
});

describe('wrapSandboxCommand', () => {
  const SECCOMP = '/j/steps/algorithm/seccomp.bpf';
  const bin = { sh: '/bin/sh', prlimit: '/usr/bin/prlimit', setpriv: '/usr/bin/setpriv', bwrap: '/usr/bin/bwrap' };
  test.each([
    [
      'root with an output limit',
      { cgroupProcs: ['/cg/memory/c2d/x/cgroup.procs', "/cg/it's/cgroup.procs"], fsizeBytes: 1000, uid: 65534, seccompFile: SECCOMP, bin },
      [
        '/bin/sh',
        '-c',
        `echo $$ > '/cg/memory/c2d/x/cgroup.procs' && echo $$ > '/cg/it'\\''s/cgroup.procs' && exec "$@" 9< '/j/steps/algorithm/seccomp.bpf'`,
        'c2d-step',
        '/usr/bin/prlimit',
        '--fsize=1000',
        '/usr/bin/setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '/usr/bin/bwrap',
        '--seccomp',
        '9',
        '--x',
      ],
    ],
    [
      'not root, no output limit',
      { cgroupProcs: ['/cg/a/cgroup.procs'], seccompFile: "/j/it's.bpf", bin },
      ['/bin/sh', '-c', `echo $$ > '/cg/a/cgroup.procs' && exec "$@" 9< '/j/it'\\''s.bpf'`, 'c2d-step', '/usr/bin/bwrap', '--seccomp', '9', '--x'],
    ],
    [
      'root with a job network',
      { cgroupProcs: [], uid: 65534, netns: '/run/netns/c2d-x', seccompFile: SECCOMP, bin: { ...bin, nsenter: '/usr/bin/nsenter' } },
      [
        '/bin/sh',
        '-c',
        `exec "$@" 9< '/j/steps/algorithm/seccomp.bpf'`,
        'c2d-step',
        '/usr/bin/nsenter',
        '--net=/run/netns/c2d-x',
        '/usr/bin/setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '/usr/bin/bwrap',
        '--seccomp',
        '9',
        '--x',
      ],
    ],
  ])('when %s, then the step joins its cgroups first, drops to the sandbox uid and hands bwrap its seccomp filter', (_name, w, want) => {
    expect(wrapSandboxCommand(w, ['--x'])).toEqual(want);
  });

  test('when a job network is asked for without nsenter, then no command is built', () => {
    expect(() => wrapSandboxCommand({ cgroupProcs: [], netns: '/run/netns/c2d-x', seccompFile: SECCOMP, bin }, ['--x'])).toThrow(/nsenter/);
  });
});

describe('algorithmSandbox', () => {
  test('when network access is asked for without a job namespace, then it refuses rather than share the host network', () => {
    const container = { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' };
    expect(() => algorithmSandbox(job, { container, env: {}, allowNetwork: true }, node, 4096)).toThrow(/job network namespace/);
  });
});
