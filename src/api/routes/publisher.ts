import { z } from 'zod';
import { requireContainer } from '../../assets/authorize';
import { DEFAULT_FETCH_LIMITS, FileFetchError, probeFile } from '../../assets/checksums';
import { NotFoundError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { type Method, route, SERVICES } from '../route';
import { fileInfoSchema, validateContainerSchema } from '../schemas';

/** Publisher tools: what a service's files look like from here (never where they are), and container checks. */

/** A probe answers within this; fileinfo is unsigned, so a slow file server must not hold the API long. */
const PROBE_LIMITS = { ...DEFAULT_FETCH_LIMITS, timeoutMs: 10_000 };

const fileInfoViewSchema = z.object({
  index: z.number().int(),
  valid: z.boolean(),
  /** as the file server states it (Ocean's clients read a string); null when it states none */
  contentLength: z.string().nullable(),
  contentType: z.string().nullable(),
});
export type FileInfo = z.infer<typeof fileInfoViewSchema>;

async function fileInfos(deps: AppDeps, did: string, serviceId: string): Promise<FileInfo[]> {
  const ddo = await deps.resolver.resolve(did);
  if (!ddo) throw new NotFoundError('did_not_found', `asset ${did} not found`, 'dataset');
  const service = ddo.services.find((s) => s.id === serviceId);
  if (!service) throw new NotFoundError('service_not_found', `service ${serviceId} not found in ${ddo.id}`, 'dataset');
  const { files } = await deps.decryptor.decryptServiceFiles(ddo, service, 'dataset');
  return Promise.all(
    files.map(async (file, index): Promise<FileInfo> => {
      try {
        const probe = await probeFile(file, PROBE_LIMITS, deps.fetchPolicy);
        return { index, valid: true, contentLength: probe.contentLength === null ? null : String(probe.contentLength), contentType: probe.contentType };
      } catch (err) {
        if (!(err instanceof FileFetchError)) throw err;
        deps.logger.info({ did: ddo.id, serviceId, index, reason: err.reason }, 'file probe failed');
        return { index, valid: false, contentLength: null, contentType: null };
      }
    }),
  );
}

/** Ocean's clients POST {did, serviceId}; GET with a query string works too. */
const fileinfo = (method: Method, name: string) =>
  route({
    name,
    method,
    path: `${SERVICES}/fileinfo`,
    summary: "What a service's files look like from here (never where they are)",
    tags: ['publisher'],
    auth: 'none',
    service: method === 'post',
    input: { from: 'params', schema: fileInfoSchema },
    responses: { 200: { description: 'One entry per file', schema: z.array(fileInfoViewSchema) } },
    handler:
      (deps) =>
      async ({ input, json }) =>
        json(200, await fileInfos(deps, input.did, input.serviceId)),
  });

export const validateContainer = route({
  name: 'validateContainer',
  method: 'post',
  path: `${SERVICES}/validateContainer`,
  summary: 'Checks a container section against the rules for algorithms',
  tags: ['publisher'],
  auth: 'none',
  service: true,
  input: { from: 'params', schema: validateContainerSchema },
  responses: { 200: { description: 'Valid', schema: z.object({ valid: z.literal(true) }) } },
  handler:
    () =>
    ({ input, json }) => {
      requireContainer(input);
      json(200, { valid: true });
    },
});

export const publisherRoutes = [fileinfo('post', 'fileinfo'), fileinfo('get', 'fileinfoGet'), validateContainer];
