import { Router } from 'express';
import type { AppDeps } from '../deps';

/** Routes of the chain issue; filled in by that work. */
export function chainRoutes(_deps: AppDeps): Router {
  return Router();
}
