import type { Response } from 'express';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../domain/logger';

/**
 * Pipes a stream into the response. Once the status line is out an error cannot become an error
 * response: a client that goes away, or a source that fails, ends with both sides closed.
 */
export async function sendStream(res: Response, stream: Readable, logger: Logger): Promise<void> {
  try {
    await pipeline(stream, res);
  } catch (err) {
    logger.debug({ error: err instanceof Error ? err.name : typeof err }, 'response stream ended early');
    stream.destroy();
    res.destroy();
  }
}
