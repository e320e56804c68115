import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main, parseCli } from '../../src/entrypoints/cli';

const KEY = `0x${'ab'.repeat(32)}`;

/** Collects what the CLI writes. */
const sink = () => {
  let text = '';
  return { stream: { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream, text: () => text };
};

describe('c2d argument parsing', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-cli-args-'));
    fs.writeFileSync(path.join(dir, 'key'), `${KEY.slice(2)}\n`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when no provider is given, then the default one is used; a flag beats the variable, and a trailing slash is dropped', () => {
    expect(parseCli(['envs'], {}).provider).toBe('http://127.0.0.1:8030');
    expect(parseCli(['envs'], { C2D_PROVIDER_URL: 'http://p.example:1/' }).provider).toBe('http://p.example:1');
    expect(parseCli(['envs', '--provider', 'https://q.example'], { C2D_PROVIDER_URL: 'http://p.example:1' }).provider).toBe('https://q.example');
  });

  it('when the key comes from a file (with or without 0x) or from C2D_CONSUMER_KEY, then it is read; the file wins', () => {
    expect(parseCli(['stop', 'a'.repeat(32), '--key-file', path.join(dir, 'key')], { C2D_CONSUMER_KEY: `0x${'cd'.repeat(32)}` }).key).toBe(KEY);
    expect(parseCli(['stop', 'a'.repeat(32)], { C2D_CONSUMER_KEY: KEY }).key).toBe(KEY);
    expect(parseCli(['envs'], {}).key).toBeNull();
  });

  it.each([
    ['a key on the command line', ['status', 'a'.repeat(32), '--key', KEY], /Unknown option '--key'/],
    ['no key at all', ['status', 'a'.repeat(32)], /--key-file/],
    ['a key file that is missing', ['status', 'a'.repeat(32), '--key-file', '/nonexistent/key'], /ENOENT/],
    ['a malformed job id', ['status', 'nope'], /32 lower-case hex/],
    ['both --algorithm and --raw', ['start', '--env', 'e', '--dataset', 'd', '--algorithm', 'a', '--raw', 'f'], /exactly one of/],
    ['a raw algorithm without image', ['start', '--env', 'e', '--dataset', 'd', '--raw', 'f', '--entrypoint', 'node $ALGO'], /--image and --entrypoint/],
    ['a start without environment', ['start', '--dataset', 'd', '--algorithm', 'a'], /--env is required/],
    ['an unknown command', ['launch'], /unknown command launch \(commands: envs, start, status, logs, results, stop, delete, catalog\)/],
    ['no command', [], /a command is needed/],
    ['an unexpected argument', ['envs', 'extra'], /unexpected argument extra/],
    ['a provider that is no http URL', ['envs', '--provider', 'ftp://x'], /http\(s\) URL/],
  ])('when given %s, then it exits 2 with one line of error and a hint on stderr, and never echoes the key', async (_what, argv, expected) => {
    const out = sink();
    const err = sink();
    const code = await main(argv, { C2D_PROVIDER_URL: 'http://127.0.0.1:9' }, { out: out.stream, err: err.stream });
    expect(code).toBe(2);
    const [line, hint, ...more] = err.text().split('\n');
    expect(line).toMatch(/^c2d: /);
    expect(line).toMatch(expected);
    expect([hint, ...more]).toEqual(["Run 'c2d --help' for usage.", '']);
    expect(out.text()).toBe('');
    expect(out.text() + err.text()).not.toContain(KEY.slice(2));
  });

  it.each([[['--help']], [['-h']], [['help']], [['status', 'nope', '--help']]])(
    'when asked for help (%j), then the help goes to stdout and it exits 0, whatever the settings',
    async (argv) => {
      const out = sink();
      const err = sink();
      const code = await main(argv, { C2D_PROVIDER_URL: 'ftp://not-http' }, { out: out.stream, err: err.stream });
      expect(code).toBe(0);
      expect(err.text()).toBe('');
      expect(out.text()).toMatch(/^c2d — a consumer of a Compute-to-Data provider\n\nusage:\n {2}c2d help \| --help \| -h\n/);
      expect(out.text()).toContain('exit codes: 0 done · 1 the job failed · 2 usage error · 3 the provider refused · 4 the provider is unreachable or failing');
    },
  );
});
