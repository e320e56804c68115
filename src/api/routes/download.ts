import { findService, requireConsumableState, requireCredentials, resolveAsset } from '../../assets/authorize';
import { FileFetchError, openFileStream } from '../../assets/checksums';
import { AccessDeniedError, NotFoundError, UnavailableError } from '../../domain/errors';
import { requireSignedRequest } from '../auth';
import { bytesSchema, handledError } from '../responses';
import { route, SERVICES } from '../route';
import { downloadSchema } from '../schemas';
import { sendStream } from '../stream';

/** How long the file's server may take to answer with headers; the body then takes as long as it needs. */
const OPEN_TIMEOUT_MS = 30_000;

/** Ocean's error resource key for download refusals. */
const RESOURCE = 'download';

/**
 * Ocean's `download`: one file of an `access` service, streamed through this provider (the location is
 * never shown). Public algorithms are fetched this way by other providers running them, signing as
 * their environment's `consumerAddress`. A `compute` service is never downloadable: its files only
 * ever reach a job. Catalog assets are granted by their credentials; on-chain assets also need an
 * order made out to the caller (steps 1–4 of §4; the provider fee of the order belongs to whoever
 * runs the job, so it is not checked here).
 */
export const download = route({
  name: 'download',
  method: 'get',
  path: `${SERVICES}/download`,
  summary:
    "Streams one file of an `access` service (signed: documentId + nonce); needs the asset's credentials, and for on-chain assets an order made out to the caller. `compute` services are never downloadable",
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: downloadSchema },
  responses: {
    200: { description: 'The file (its location is never shown)', type: 'application/octet-stream', schema: bytesSchema },
    400: handledError('Not downloadable (a compute service), not allowed by the credentials, no valid order, or a file URL the SSRF guard refuses'),
    404: handledError('No such asset, service or file index'),
  },
  handler:
    (deps) =>
    async ({ input: q, res }) => {
      await requireSignedRequest(deps.nonces, { address: q.consumerAddress, parts: [q.documentId], nonce: q.nonce, signature: q.signature });
      const ddo = await resolveAsset(deps.resolver, q.documentId, RESOURCE);
      const { service, serviceIndex } = findService(ddo, q.serviceId, RESOURCE);
      if (service.type !== 'access') {
        throw new AccessDeniedError(
          RESOURCE,
          'compute_service_not_downloadable',
          `${RESOURCE}: service ${service.id} is a ${service.type} service; only access services can be downloaded`,
        );
      }
      requireConsumableState(ddo, RESOURCE);
      requireCredentials(ddo, service, q.consumerAddress, RESOURCE);
      if (service.datatokenAddress) {
        if (!q.transferTxId) throw new AccessDeniedError(RESOURCE, 'order_not_found', `${RESOURCE}: an on-chain asset needs the transferTxId of its order`);
        if (!deps.orderVerifier)
          throw new UnavailableError('chain_not_configured', `${RESOURCE}: ${ddo.id} is on chain, but this provider has no chain configured`);
        await deps.orderVerifier.checkOrder(
          { resource: RESOURCE, ddo, serviceId: service.id, transferTxId: q.transferTxId, isDataset: false },
          { consumerAddress: q.consumerAddress, now: Math.floor(Date.now() / 1000) },
        );
      }
      const { files } = await deps.decryptor.decryptServiceFiles(ddo, service, RESOURCE);
      const index = Number(q.fileIndex);
      const file = files[index];
      if (!file) throw new NotFoundError('file_not_found', `fileIndex ${index}: service ${service.id} has ${files.length} file(s), numbered from 0`, RESOURCE);

      const abort = new AbortController();
      res.on('close', () => abort.abort());
      let opened;
      try {
        opened = await openFileStream(file, { timeoutMs: OPEN_TIMEOUT_MS, signal: abort.signal, ...(deps.fetchPolicy ? { policy: deps.fetchPolicy } : {}) });
      } catch (err) {
        if (!(err instanceof FileFetchError)) throw err;
        if (err.refused) throw new AccessDeniedError(RESOURCE, 'file_url_refused', `file ${index} of ${ddo.id}: its URL is ${err.reason}`);
        throw new UnavailableError('file_unavailable', `file ${index} of ${ddo.id} cannot be fetched from its server (${err.reason})`, { cause: err });
      }
      deps.logger.info(
        { did: ddo.id, serviceIndex, fileIndex: index, consumer: q.consumerAddress.toLowerCase(), onChain: !!service.datatokenAddress },
        'file downloaded',
      );
      res.set({
        'Content-Type': 'application/octet-stream',
        'Content-Disposition': `attachment;filename=file${index}`,
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-store',
        // ours: how many files the service has, so a provider hashing a public algorithm knows when it has all
        'X-File-Count': String(files.length),
        ...(opened.contentLength !== null ? { 'Content-Length': String(opened.contentLength) } : {}),
      });
      await sendStream(res, opened.stream, deps.logger);
    },
});
