import express from 'express';
import type { AppDeps } from './deps';
import { errorHandler, notFoundHandler } from './errors';
import { apiMetrics } from './metrics';
import { collapseLeadingSlashes, cors, rateLimiters, refuseHead, requestLog } from './middleware';
import { BODY_LIMIT, signedPaths } from './route';
import { codecRoutes } from './routes/codec';
import { routes } from './table';

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
  app.use(refuseHead(signedPaths(routes)));
  const router = express.Router();
  const limited = rateLimiters(deps.rateLimits);
  for (const route of routes) router[route.method](route.path, ...limited(route), ...route.handlers(deps, routes));
  app.use(router);
  // a request no route takes still has its JSON body read (a malformed one is a 400, as on every route)
  app.use(express.json({ limit: BODY_LIMIT }), notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}
