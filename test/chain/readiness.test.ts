import request from 'supertest';
import { type ApiHarness, apiHarness } from '../api/harness';
import { startChain, type TestChain } from '../helpers/chain';

/** /readyz with a chain configured: a provider whose chain node does not answer cannot check orders or fees, so it is not ready. */
describe('readiness with a chain', () => {
  let chain: TestChain;
  let h: ApiHarness;

  beforeAll(async () => {
    chain = await startChain();
    // what the API entrypoint wires: the node's block number, asked directly (no provider-side cache)
    h = await apiHarness({ chainPing: async () => void (await chain.provider.send('eth_blockNumber', [])) });
  }, 120_000);

  afterAll(async () => {
    chain?.node.process.kill('SIGCONT');
    h?.cleanup();
    await chain?.stop();
  });

  it('when the chain node answers, then /readyz is 200 with both checks; when it is paused, then 503 naming the chain; when it is back, then 200 again', async () => {
    expect((await request(h.app).get('/readyz').expect(200)).body).toEqual({ status: 'ready', checks: { temporal: 'ok', chain: 'ok' } });

    chain.node.process.kill('SIGSTOP');
    try {
      const down = await request(h.app).get('/readyz').expect(503);
      expect(down.body).toEqual({ error: 'The chain node is unreachable', checks: { temporal: 'ok', chain: 'unreachable' } });
      h.temporal.reachable = false;
      expect((await request(h.app).get('/readyz').expect(503)).body).toEqual({
        error: 'The chain node and Temporal are unreachable',
        checks: { temporal: 'unreachable', chain: 'unreachable' },
      });
      h.temporal.reachable = true;
    } finally {
      chain.node.process.kill('SIGCONT');
    }
    expect((await request(h.app).get('/readyz').expect(200)).body.checks).toEqual({ temporal: 'ok', chain: 'ok' });
  }, 60_000);
});
