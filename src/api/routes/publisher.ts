import { Router } from 'express';
import type { AppDeps } from '../deps';

/** Routes of the publisher issue; filled in by that work. */
export function publisherRoutes(_deps: AppDeps): Router {
  return Router();
}
