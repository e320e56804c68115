import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_UID_RANGE, hostAccounts, JobUids, preferredUidSlot, UidRangeError, uidRangeProblem } from '../../src/compute/process/job-uids';

const jobId = (): string => randomBytes(16).toString('hex');

describe('JobUids', () => {
  let dir: string;
  let roots: string;
  const root = (id: string): string => {
    const r = path.join(roots, id);
    fs.mkdirSync(r, { recursive: true });
    return r;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-uids-unit-'));
    roots = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-uids-roots-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(roots, { recursive: true, force: true });
  });

  test('when many jobs claim at once, then each gets its own uid from the range, never 0, and the same one on every later call', () => {
    const uids = new JobUids({ base: 3000, count: 64 }, dir);
    const ids = Array.from({ length: 64 }, jobId);
    const got = ids.map((id) => uids.claim(id, root(id)));
    expect(new Set(got).size).toBe(64);
    for (const uid of got) {
      expect(uid).toBeGreaterThanOrEqual(3000);
      expect(uid).toBeLessThan(3064);
    }
    expect(ids.map((id) => uids.claim(id, root(id)))).toEqual(got);
    expect(ids.map((id) => uids.held(id))).toEqual(got);
  });

  test('when a job claims, then it starts from the uid its id prefers (deterministic), and moves on when that one is held', () => {
    const uids = new JobUids({ base: 5000, count: 1000 }, dir);
    const a = jobId();
    expect(uids.claim(a, root(a))).toBe(5000 + preferredUidSlot(a, 1000));
    // a second job preferring the same slot gets the next one
    let b = jobId();
    while (preferredUidSlot(b, 1000) !== preferredUidSlot(a, 1000)) b = jobId();
    expect(uids.claim(b, root(b))).toBe(5000 + ((preferredUidSlot(a, 1000) + 1) % 1000));
  });

  test('when another worker on the host (its own instance, the same dir) claims, then it never gets a uid a job holds, and it finds a job that one claimed', () => {
    const one = new JobUids({ base: 7000, count: 2 }, dir);
    const two = new JobUids({ base: 7000, count: 2 }, dir);
    const a = jobId();
    const b = jobId();
    const ua = one.claim(a, root(a));
    const ub = two.claim(b, root(b));
    expect(ub).not.toBe(ua);
    expect(two.claim(a, root(a))).toBe(ua);
    const c = jobId();
    expect(() => two.claim(c, root(c))).toThrow(UidRangeError);
    expect(() => two.claim(c, root(c))).toThrow(/every sandbox uid \(2 from 7000\) is held.*C2D_SANDBOX_UID_COUNT/);
  });

  test('when a job is released, then its uid is free for the next job and the released job holds none', () => {
    const uids = new JobUids({ base: 9000, count: 1 }, dir);
    const a = jobId();
    const b = jobId();
    expect(uids.claim(a, root(a))).toBe(9000);
    expect(() => uids.claim(b, root(b))).toThrow(UidRangeError);
    uids.release(a);
    uids.release(a); // idempotent
    expect(uids.held(a)).toBeNull();
    expect(uids.claim(b, root(b))).toBe(9000);
  });

  test('when every uid is held and a holder job dir is gone (claimed over a minute ago), then that uid is taken back; a fresh claim is not', () => {
    const uids = new JobUids({ base: 11000, count: 2 }, dir);
    const gone = jobId();
    const fresh = jobId();
    const kept = jobId();
    const goneRoot = path.join(roots, 'removed-without-cleanup');
    const gu = uids.claim(gone, goneRoot);
    const ku = uids.claim(kept, root(kept));
    const old = new Date(Date.now() - 120_000);
    // the kept job's record is old too, but its dir exists
    for (const uid of [gu, ku]) fs.utimesSync(path.join(dir, 'uids', String(uid)), old, old);
    expect(uids.claim(fresh, root(fresh))).toBe(gu);
    expect(uids.held(gone)).toBeNull();
    expect(uids.held(kept)).toBe(ku);
    // not old: a claim whose job dir is not made yet stays
    const next = jobId();
    fs.rmSync(root(fresh), { recursive: true });
    expect(() => uids.claim(next, root(next))).toThrow(UidRangeError);
    expect(uids.held(fresh)).toBe(gu);
  });

  test('when a claim was cut short (the uid taken, the job record never written), then release frees that uid too', () => {
    const uids = new JobUids({ base: 13000, count: 1 }, dir);
    const a = jobId();
    uids.claim(a, root(a));
    fs.rmSync(path.join(dir, 'jobs', a));
    expect(uids.held(a)).toBeNull();
    uids.release(a);
    const b = jobId();
    expect(uids.claim(b, root(b))).toBe(13000);
  });

  test('when the record names a uid outside the range or another job holds it, then the job holds none', () => {
    const uids = new JobUids({ base: 15000, count: 4 }, dir);
    const a = jobId();
    const ua = uids.claim(a, root(a));
    fs.writeFileSync(path.join(dir, 'jobs', a), '0');
    expect(uids.held(a)).toBeNull();
    fs.writeFileSync(path.join(dir, 'jobs', a), String(ua));
    fs.writeFileSync(path.join(dir, 'uids', String(ua)), `${jobId()}\n/elsewhere`);
    expect(uids.held(a)).toBeNull();
  });

  test('when a uid is transferred to a job that holds none, then the job holds it from then on and the first id holds nothing', () => {
    const uids = new JobUids({ base: 3000, count: 8 }, dir);
    const [ahead, job] = [jobId(), jobId()];
    const uid = uids.claim(ahead, root(job));
    expect(uids.transfer(ahead, job)).toBe(true);
    expect(uids.held(job)).toBe(uid);
    expect(uids.held(ahead)).toBeNull();
    // the job's later claims find it; releasing the first id gives nothing back
    expect(uids.claim(job, root(job))).toBe(uid);
    uids.release(ahead);
    expect(uids.held(job)).toBe(uid);
    uids.release(job);
    expect(uids.held(job)).toBeNull();
  });

  test('when the job holds a uid already, or the first id holds none, then nothing is transferred', () => {
    const uids = new JobUids({ base: 3000, count: 8 }, dir);
    const [ahead, job, nobody] = [jobId(), jobId(), jobId()];
    const aheadUid = uids.claim(ahead, root(job));
    const jobsUid = uids.claim(job, root(job));
    expect(uids.transfer(ahead, job)).toBe(false);
    expect([uids.held(ahead), uids.held(job)]).toEqual([aheadUid, jobsUid]);
    expect(uids.transfer(nobody, jobId())).toBe(false);
    expect(() => uids.transfer('../etc', job)).toThrow(/invalid job id/);
  });

  test('when a job id is not one, then nothing is claimed', () => {
    const uids = new JobUids(DEFAULT_UID_RANGE, dir);
    expect(() => uids.claim('../../etc', '/x')).toThrow(/invalid job id/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('uidRangeProblem', () => {
  const accounts = hostAccounts(
    'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nbig:x:2000000100:1::/home/big:/bin/sh\n# comment\n',
  );

  test.each([
    ['the default range', DEFAULT_UID_RANGE, hostAccounts('root:x:0:0::/root:/bin/sh'), null],
    ['a range holding root', { base: 0, count: 10 }, accounts, /never 0/],
    ['a range holding an account', { base: 2_000_000_000, count: 65_536 }, accounts, /account big has uid 2000000100.*C2D_SANDBOX_UID_BASE/],
    ['a range holding nobody', { base: 60_000, count: 10_000 }, accounts, /account nobody/],
    ['a range past 2^31 - 1', { base: 2_147_483_000, count: 1000 }, accounts, /past 2147483647/],
    ['no uids', { base: 10_000, count: 0 }, accounts, /C2D_SANDBOX_UID_COUNT/],
  ])('when the settings give %s, then the answer says what is wrong', (_name, range, acc, want) => {
    const problem = uidRangeProblem(range, acc);
    if (want === null) expect(problem).toBeNull();
    else expect(problem).toMatch(want);
  });

  test('when /etc/passwd is parsed, then every account with a numeric uid is known', () => {
    expect([...accounts.entries()]).toEqual([
      [0, 'root'],
      [65534, 'nobody'],
      [2000000100, 'big'],
    ]);
  });
});
