import path from 'node:path';
import { type Config, loadConfig } from '../src/config';
import { retentionFor, startDevServer } from './temporal-server';

/** `npm run temporal`: the Temporal dev server alone, jobs kept in <data dir>/temporal.db, our search attributes registered. */
export async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const [host, port] = splitAddress(config.temporal.address);
  const dbFile = path.join(config.dataDir, 'temporal.db');
  const codecEndpoint = uiCodecEndpoint(config);
  const server = await startDevServer({
    ip: host,
    port,
    uiPort: config.temporal.uiPort,
    dbFile,
    namespace: config.temporal.namespace,
    retentionSeconds: retentionFor(config.environments.map((e) => e.storageExpiry)),
    ...(codecEndpoint ? { codecEndpoint } : {}),
  });
  console.log(
    `Temporal dev server on ${config.temporal.address}, Web UI http://${host}:${config.temporal.uiPort}${codecEndpoint ? ' (payloads decoded through the API codec endpoint)' : ''}, jobs stored in ${dbFile}`,
  );
  const stop = (): void => {
    server.kill('SIGTERM');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  server.once('exit', (code) => process.exit(code ?? 0));
}

/**
 * The API's codec endpoint for the dev Web UI, when payloads are encrypted and the endpoint has a token.
 * The dev UI has no login and cannot send headers, so the token rides in the path: whoever can open this
 * UI reads decoded payloads (README: Payload encryption).
 */
export function uiCodecEndpoint(config: Pick<Config, 'api' | 'codec'>): string | undefined {
  if (config.codec.keys.length === 0 || !config.codec.token) return undefined;
  const host = config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.api.port}/codec/${encodeURIComponent(config.codec.token)}`;
}

export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port)) throw new Error(`C2D_TEMPORAL_ADDRESS must be host:port, got ${address}`);
  return [address.slice(0, i), port];
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
