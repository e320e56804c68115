import { Client, Connection } from '@temporalio/client';
import { UnavailableError } from '../../src/domain/errors';
import { freePort } from '../../tools/temporal-server';
import { TemporalJobsService } from '../../src/temporal/client';
import { testState } from '../helpers/state';

/** The readiness ping of the real JobsService, against the run's Temporal dev server and against nothing. */
describe('TemporalJobsService.ping', () => {
  const results = { get: () => Promise.resolve(null), remove: () => Promise.resolve() };
  const connections: Connection[] = [];
  const serviceAt = (address: string): TemporalJobsService => {
    const connection = Connection.lazy({ address });
    connections.push(connection);
    return new TemporalJobsService({ client: new Client({ connection, namespace: 'default' }), taskQueue: 'unused', results });
  };
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.close()));
  });

  it('when Temporal answers, then ping resolves', async () => {
    await expect(serviceAt(testState().temporalAddress).ping()).resolves.toBeUndefined();
  });

  it('when nothing listens at the address, then ping fails with UnavailableError within its short deadline', async () => {
    const service = serviceAt(`127.0.0.1:${await freePort()}`);
    const started = Date.now();
    await expect(service.ping()).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
