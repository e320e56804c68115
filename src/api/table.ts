import type { Route } from './route';
import { aquariusDdo } from './routes/aquarius';
import { authRoutes } from './routes/auth';
import { initializeCompute, initializeComputeV2 } from './routes/chain';
import { computeRoutes } from './routes/compute';
import { decryptRoute } from './routes/decrypt';
import { download } from './routes/download';
import { infoRoutes } from './routes/info';
import { opsRoutes } from './routes/ops';
import { publisherRoutes } from './routes/publisher';
import { resultRoutes } from './routes/results';

/**
 * Every route of the Provider API, in one list: `createApp` registers them and `/api/openapi.json`
 * describes them from it. To add a route, declare it with `route({...})` in a module under routes/ and
 * list it here. (The codec endpoint is Temporal's protocol, not ours: app.ts mounts it on its own.)
 */
export const routes: readonly Route[] = [
  ...infoRoutes,
  ...computeRoutes,
  initializeComputeV2,
  initializeCompute,
  ...resultRoutes,
  ...authRoutes,
  download,
  decryptRoute,
  ...publisherRoutes,
  aquariusDdo,
  ...opsRoutes,
];
