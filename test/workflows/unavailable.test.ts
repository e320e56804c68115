import { Client, Connection } from '@temporalio/client';
import { UnavailableError } from '../../src/domain/errors';
import { freePort } from '../../tools/temporal-server';
import { connectTemporal, TemporalJobsService } from '../../src/temporal/client';
import { MemoryResultStore } from './fakes';

describe('Temporal unreachable', () => {
  test('when nothing listens at the Temporal address, then connecting fails with UnavailableError', async () => {
    const port = await freePort();
    await expect(connectTemporal({ temporal: { address: `127.0.0.1:${port}`, namespace: 'default' } })).rejects.toBeInstanceOf(UnavailableError);
  });

  test('when Temporal goes away, then the jobs service answers UnavailableError', async () => {
    const port = await freePort();
    const connection = Connection.lazy({ address: `127.0.0.1:${port}` });
    const jobs = new TemporalJobsService({ client: new Client({ connection }), taskQueue: 'q', results: new MemoryResultStore(), rpcTimeoutMs: 1000 });
    try {
      const err = await jobs.get('0'.repeat(32)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      // which refusal it was, by its gRPC status name: what an operator looks up
      expect((err as Error).message).toMatch(/^Temporal is unavailable \((DEADLINE_EXCEEDED|UNAVAILABLE)\)$/);
      await expect(jobs.currentJobs('env')).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await connection.close();
    }
  });
});
