import express, { type Router } from 'express';
import { requireContainer } from '../../assets/authorize';
import { DEFAULT_FETCH_LIMITS, FileFetchError, probeFile } from '../../assets/checksums';
import { NotFoundError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { endpoints } from '../endpoints';
import { parseParams } from '../params';
import { fileInfoSchema, validateContainerSchema } from '../schemas';

/** A probe answers within this; fileinfo is unsigned, so a slow file server must not hold the API long. */
const PROBE_LIMITS = { ...DEFAULT_FETCH_LIMITS, timeoutMs: 10_000 };

export interface FileInfo {
  index: number;
  valid: boolean;
  /** as the file server states it (Ocean's clients read a string); null when it states none */
  contentLength: string | null;
  contentType: string | null;
}

/** Publisher tools: what a service's files look like from here (never where they are), and container checks. */
export function publisherRoutes(deps: AppDeps): Router {
  const router = express.Router();

  const fileinfo: express.RequestHandler = async (req, res) => {
    const { did, serviceId } = parseParams(fileInfoSchema, req);
    const ddo = await deps.resolver.resolve(did);
    if (!ddo) throw new NotFoundError('did_not_found', `asset ${did} not found`, 'dataset');
    const service = ddo.services.find((s) => s.id === serviceId);
    if (!service) throw new NotFoundError('service_not_found', `service ${serviceId} not found in ${ddo.id}`, 'dataset');
    const { files } = await deps.decryptor.decryptServiceFiles(ddo, service, 'dataset');
    const infos = await Promise.all(
      files.map(async (file, index): Promise<FileInfo> => {
        try {
          const probe = await probeFile(file, PROBE_LIMITS);
          return { index, valid: true, contentLength: probe.contentLength === null ? null : String(probe.contentLength), contentType: probe.contentType };
        } catch (err) {
          if (!(err instanceof FileFetchError)) throw err;
          deps.logger.info({ did: ddo.id, serviceId, index, reason: err.reason }, 'file probe failed');
          return { index, valid: false, contentLength: null, contentType: null };
        }
      }),
    );
    res.json(infos);
  };
  router.post(endpoints.fileinfo[1], fileinfo);
  router.get(endpoints.fileinfo[1], fileinfo);

  router.post(endpoints.validateContainer[1], (req, res) => {
    requireContainer(parseParams(validateContainerSchema, req));
    res.json({ valid: true });
  });

  return router;
}
