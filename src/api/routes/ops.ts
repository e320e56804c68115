import { Router } from 'express';
import type { AppDeps } from '../deps';

/** Routes of the ops issue; filled in by that work. */
export function opsRoutes(_deps: AppDeps): Router {
  return Router();
}
