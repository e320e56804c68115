import request from 'supertest';
import { type ApiHarness, apiHarness } from './harness';

/** The per-consumer cap (C2D_MAX_JOBS_PER_CONSUMER) against the fake orchestrator's visibility. */
describe('the per-consumer cap', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness({ maxJobsPerConsumer: 2 });
  });
  afterEach(() => h.cleanup());

  const start = async () =>
    request(h.app)
      .post('/api/services/compute')
      .send(await h.startBody(h.consumer));
  const finish = (jobId: string): void => void h.jobs.set(jobId, { status: 70, dateFinished: String(Date.now() / 1000) });

  test('when visibility does not list a consumer’s new jobs yet, then the cap still counts them: the third start is a 409', async () => {
    h.jobs.visibilityLags = true;
    const first = await start();
    const second = await start();
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await start();
    expect(third.status).toBe(409);
    expect(third.body.error).toContain('already has 2 running or queued jobs in environment free');
    expect(h.jobs.started).toHaveLength(2);
  });

  test('when a consumer starts job after job, then each ended one is looked up once, not again at every start of the next seconds', async () => {
    h.jobs.visibilityLags = true;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await start();
      expect(res.status).toBe(200);
      ids.push((res.body as { jobId: string }[])[0]!.jobId);
      finish(ids[i]!);
    }
    // each start looked up the one before it (ended), and nothing else
    expect(h.jobs.gets).toEqual(ids.slice(0, 4));
  });

  test('when visibility lists a job, then the cap counts it from the list without looking it up, and it is counted while it runs', async () => {
    const first = await start();
    const second = await start();
    expect([first.status, second.status]).toEqual([200, 200]);
    expect((await start()).status).toBe(409);
    expect(h.jobs.gets).toEqual([]);
    // one ends: visibility lists it no more, and a new one may start
    finish((first.body as { jobId: string }[])[0]!.jobId);
    expect((await start()).status).toBe(200);
    expect(h.jobs.gets).toEqual([]);
  });
});
