import { environmentResources, environmentSchema, jobMaxDuration, jobResourceAmounts, sizedForJob } from '../../src/domain/environment';
import { billedMinutes, pricePerMinute } from '../../src/domain/resources';

const legacy = environmentSchema.parse({ id: 'legacy', cpuNumber: 2, ramGB: 4, diskGB: 10, maxJobs: 3, maxJobDuration: 600 });
const declared = environmentSchema.parse({
  id: 'declared',
  maxJobs: 4,
  maxJobDuration: 3600,
  resources: [
    { id: 'cpu', total: 8, min: 1, max: 4 },
    { id: 'ram', total: 16, min: 0.5, max: 8 },
    { id: 'disk', total: 100, min: 1, max: 50 },
  ],
  fees: {
    '8996': [
      {
        feeToken: '0x' + 'aa'.repeat(20),
        prices: [
          { id: 'cpu', price: 1 },
          { id: 'ram', price: 0.5 },
        ],
      },
    ],
  },
  free: { maxJobDuration: 60, maxJobs: 1, resources: [{ id: 'cpu', max: 1 }] },
});

describe('environment resources (C2D v2)', () => {
  it('when an environment declares no resources, then they follow from the per-job fields times maxJobs, and a job uses one share', () => {
    expect(environmentResources(legacy)).toEqual([
      { id: 'cpu', description: 'cores', total: 6, min: 1, max: 2 },
      { id: 'ram', description: 'GB', total: 12, min: 1, max: 4 },
      { id: 'disk', description: 'GB', total: 30, min: 1, max: 10 },
    ]);
    expect(jobResourceAmounts(legacy, undefined)).toEqual([
      { id: 'cpu', amount: 2 },
      { id: 'ram', amount: 4 },
      { id: 'disk', amount: 10 },
    ]);
  });

  it('when a job asks for amounts, then unasked resources get their min, and amounts outside min..max or unknown ids are refused with what is allowed', () => {
    expect(jobResourceAmounts(declared, [{ id: 'cpu', amount: 3 }])).toEqual([
      { id: 'cpu', amount: 3 },
      { id: 'ram', amount: 0.5 },
      { id: 'disk', amount: 1 },
    ]);
    expect(jobResourceAmounts(declared, [{ id: 'ram', amount: 9 }])).toBe('resource ram: 9 asked, environment declared allows 0.5–8 per job');
    expect(jobResourceAmounts(declared, [{ id: 'gpu', amount: 1 }])).toBe('resource gpu is not offered by environment declared (it has: cpu, ram, disk)');
    expect(jobResourceAmounts(declared, [{ id: 'cpu', amount: 2 }], true)).toBe('resource cpu: 2 asked, environment declared allows 1–1 for a free job');
  });

  it('when a job gives maxJobDuration, then it is capped by the environment (a free job by the free limit)', () => {
    expect(jobMaxDuration(declared, {})).toBe(3600);
    expect(jobMaxDuration(declared, { maxJobDuration: 120 })).toBe(120);
    expect(jobMaxDuration(declared, { maxJobDuration: 7200 })).toBe(3600);
    expect(jobMaxDuration(declared, { free: true })).toBe(60);
  });

  it("when the algorithm runs, then its environment carries the job's own amounts and duration (0 keeps the field)", () => {
    const sized = sizedForJob(declared, {
      maxJobDuration: 90,
      resources: [
        { id: 'cpu', amount: 3 },
        { id: 'ram', amount: 0.25 },
        { id: 'disk', amount: 0 },
      ],
    });
    expect(sized).toMatchObject({ maxJobDuration: 90, cpuNumber: 3, ramGB: 0.25, diskGB: declared.diskGB, backend: 'process' });
    expect(sizedForJob(legacy, { maxJobDuration: 600 })).toEqual(legacy);
  });

  it('when a paid job is priced, then every resource counts per unit and every started minute is billed', () => {
    const token = '0x' + 'AA'.repeat(20);
    expect(
      pricePerMinute(declared.fees, 8996, token, [
        { id: 'cpu', amount: 2 },
        { id: 'ram', amount: 4 },
        { id: 'disk', amount: 1 },
      ]),
    ).toBe(4);
    expect(pricePerMinute(declared.fees, 1, token, [{ id: 'cpu', amount: 2 }])).toBeUndefined();
    expect([1, 59, 60, 61, 3600].map(billedMinutes)).toEqual([1, 1, 1, 2, 60]);
  });
});
