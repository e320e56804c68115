import fs from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { migrateDatabase } from '../../src/storage/pg-nonces';
import { trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import type { S3Server } from '../../tools/s3-server';
import { startTemporalUi, type TemporalCluster, type TemporalUi } from '../../tools/temporal-cluster';
import { freePort } from '../../tools/temporal-server';
import { type LocalStack, serveFiles, startLocalStack } from '../../tools/local-stack';
import { clusterProviderEnv, databaseUrlOf, removeScratch, scratchDir, startTestCluster, startTestS3 } from '../helpers/cluster';
import { resultText } from '../integration/helpers';

const SUM_JS = [
  "const fs = require('fs');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n').slice(1);",
  'const sum = rows.map((r) => r.split(",").map(Number)).reduce((a, [x, y]) => a + x + y, 0);',
  "console.log('rows', rows.length);",
  "fs.writeFileSync('/data/outputs/sum.txt', String(sum));",
].join('\n');
const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20' };
const BUCKET = 'c2d-cluster';

/** The provider on the production parts: Temporal on PostgreSQL, results in S3, nonces in PostgreSQL. */
describe('a provider on Temporal-on-PostgreSQL, S3 results and PostgreSQL nonces', () => {
  let dir: string;
  let cluster: TemporalCluster;
  let s3: S3Server;
  let stack: LocalStack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let ui: TemporalUi;
  let jobId = '';

  beforeAll(async () => {
    dir = scratchDir('cluster');
    s3 = await startTestS3(dir, [BUCKET]);
    cluster = await startTestCluster(dir);
    await migrateDatabase(databaseUrlOf(cluster));
    data = await serveFiles({ 'rows.csv': 'x,y\n1,2\n3,4\n5,6\n', 'sum.js': SUM_JS });
    stack = await startLocalStack({
      temporalAddress: cluster.address,
      environments: [{ id: 'cluster', maxJobs: 2, ramGB: 0.5, maxJobDuration: 600 }],
      env: clusterProviderEnv(cluster, s3, BUCKET, 'provider/'),
      allowHosts: [data.host],
    });
  }, 300_000);

  afterAll(async () => {
    await ui?.stop();
    await stack?.stop();
    data?.close();
    await Promise.all([cluster?.stop(), s3?.stop()]);
    if (dir) removeScratch(dir);
  });

  test('the cluster runs PostgreSQL persistence with the namespace and search attributes registered', async () => {
    const connection = await Connection.connect({ address: cluster.address });
    try {
      const info = await connection.workflowService.getClusterInfo({});
      expect(info.persistenceStore).toBe('postgres12');
      expect(info.serverVersion).toBe('1.29.1');
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(customAttributes ?? {})).toEqual(
        expect.arrayContaining(['C2DOwner', 'C2DStatus', 'C2DEnvironment', 'C2DDatasetDids', 'C2DAlgorithmDid']),
      );
    } finally {
      await connection.close();
    }
  });

  test('a job survives a kill -9 of the Temporal server; its results are in the bucket and its nonces in PostgreSQL', async () => {
    const client = stack.consumer();
    const algorithm = await stack.publish(client, { type: 'algorithm', name: 'sum', urls: [data.url('sum.js')], container: CONTAINER });
    const dataset = await stack.publish(client, {
      type: 'dataset',
      name: 'rows',
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true, publisherTrustedAlgorithms: [trustedAlgorithm(algorithm, CONTAINER, [SUM_JS])] },
    });
    const started = await client.startJob({
      environment: 'cluster',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: { documentId: algorithm, serviceId: 'algo' },
    });
    await cluster.restartServer({ hard: true });
    const done = await client.waitForJob(started.jobId, { intervalMs: 100 });
    jobId = done.jobId;
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'sum.txt')).toBe('21');
    expect(await resultText(client, done, 'algorithm.log')).toContain('rows 3');
    const ranged = await client.result(
      done.jobId,
      (done.results || []).findIndex((r) => r.filename === 'sum.txt'),
      { range: 'bytes=1-1' },
    );
    expect(ranged.status).toBe(206);
    expect(await ranged.text()).toBe('1');

    // the files are in the bucket, not in the worker's data dir
    const objects = new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials, forcePathStyle: true });
    const listed = await objects.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `provider/results/${done.jobId}/` }));
    objects.destroy();
    expect((listed.Contents ?? []).map((o) => path.basename(o.Key ?? ''))).toEqual(expect.arrayContaining(['meta.json', 'sum.txt', 'algorithm.log']));
    expect(fs.existsSync(path.join(stack.dataDir, 'results', done.jobId))).toBe(false);

    // the consumer's signed calls advanced its nonce in PostgreSQL
    const pg = new PgClient({ connectionString: databaseUrlOf(cluster) });
    await pg.connect();
    try {
      const { rows } = await pg.query<{ nonce: string }>('SELECT nonce FROM c2d_nonces WHERE address = $1', [client.address.toLowerCase()]);
      expect(Number(rows[0]?.nonce)).toBeGreaterThanOrEqual(1);
    } finally {
      await pg.end();
    }
    expect(fs.existsSync(path.join(stack.dataDir, 'nonces'))).toBe(false);
  });

  test('the Web UI, pointed at the cluster, lists the job and finds it by its search attributes', async () => {
    expect(jobId).not.toBe('');
    ui = await startTemporalUi({ temporalAddress: cluster.address, port: await freePort(), dir: path.join(dir, 'ui') });
    const page = await fetch(ui.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const query = encodeURIComponent(`WorkflowId = "c2d-${jobId}" AND C2DStatus = 70`);
    const listed = await fetch(`${ui.url}/api/v1/namespaces/default/workflows?query=${query}`);
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { executions?: { execution?: { workflowId?: string }; type?: { name?: string } }[] };
    expect(body.executions?.map((e) => [e.execution?.workflowId, e.type?.name])).toEqual([[`c2d-${jobId}`, 'computeJob']]);
  });
});
