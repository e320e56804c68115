import express from 'express';
import type { AppDeps } from './deps';
import { signedPaths } from './endpoints';
import { errorHandler, notFoundHandler } from './errors';
import { apiMetrics } from './metrics';
import { collapseLeadingSlashes, cors, refuseHead, requestLog } from './middleware';
import { aquariusRoutes } from './routes/aquarius';
import { chainRoutes } from './routes/chain';
import { codecRoutes } from './routes/codec';
import { computeRoutes } from './routes/compute';
import { decryptRoutes } from './routes/decrypt';
import { downloadRoutes } from './routes/download';
import { infoRoutes } from './routes/info';
import { opsRoutes } from './routes/ops';
import { publisherRoutes } from './routes/publisher';
import { resultRoutes } from './routes/results';

export type { AppDeps } from './deps';

/** The Provider API (Ocean's wire contract). No `listen`: the entrypoint or supertest serves it. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(collapseLeadingSlashes);
  app.use(apiMetrics(deps).middleware);
  // before the request log (its path may carry a token) and the open CORS (it answers the UI's origin only)
  app.use(codecRoutes(deps.codecEndpoint, deps.logger));
  app.use(requestLog(deps.logger));
  app.use(cors);
  app.use(refuseHead(signedPaths));
  // before the JSON parser: /encrypt reads its body raw
  app.use(infoRoutes(deps));
  app.use(express.json({ limit: '1mb' }));
  app.use(computeRoutes(deps));
  app.use(chainRoutes(deps));
  app.use(decryptRoutes(deps));
  app.use(publisherRoutes(deps));
  app.use(opsRoutes(deps));
  app.use(aquariusRoutes(deps));
  app.use(resultRoutes(deps));
  app.use(downloadRoutes(deps));
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}
