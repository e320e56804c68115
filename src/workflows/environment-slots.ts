import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ResourceAmount } from '../domain/resources';
import { type AcquireRequest, acquireSignal, holdersQuery, releaseSignal, resourcesInUseQuery, slotGrantedSignal, waitersQuery } from './definitions';

export interface SlotHolder {
  workflowId: string;
  /** epoch ms (workflow time) after which the slot is taken back */
  untilMs: number;
  resources?: ResourceAmount[];
  free?: boolean;
}

/** Carried across continue-as-new. */
export interface SlotsState {
  maxJobs: number;
  /** resource id → the environment's total (absent: slots only) */
  totals?: Record<string, number>;
  maxFreeJobs?: number;
  holders: SlotHolder[];
  /** first come, first served */
  waiters: AcquireRequest[];
}

/** With nobody holding or waiting for this long, the workflow ends; the next acquire starts it again. */
const IDLE_MS = 10 * 60_000;

/** What the holders use of each resource. */
export function resourcesInUse(holders: SlotHolder[]): Record<string, number> {
  const used: Record<string, number> = {};
  for (const h of holders) for (const r of h.resources ?? []) used[r.id] = (used[r.id] ?? 0) + r.amount;
  return used;
}

/** A free job while maxFreeJobs free jobs hold a slot: it waits, and does not hold up the jobs behind it. */
const freeCapped = (state: SlotsState, req: AcquireRequest): boolean =>
  req.free === true && state.holders.filter((h) => h.free).length >= (state.maxFreeJobs ?? state.maxJobs);

/** The next waiter to grant: the first one not held back by the free-job cap, if it fits now (a slot, and every resource within its total). */
export function nextGrant(state: SlotsState): number | undefined {
  const i = state.waiters.findIndex((w) => !freeCapped(state, w));
  return i >= 0 && fits(state, state.waiters[i]!) ? i : undefined;
}

/** Whether `req` fits beside the holders: a free slot (maxJobs) and every resource it asks for within its total. */
export function fits(state: SlotsState, req: AcquireRequest): boolean {
  if (state.holders.length >= state.maxJobs) return false;
  const totals = state.totals;
  if (!totals) return true;
  const used = resourcesInUse(state.holders);
  // a resource the environment does not list is not accounted here (the API refuses unknown ids)
  return (req.resources ?? []).every((r) => totals[r.id] === undefined || (used[r.id] ?? 0) + r.amount <= totals[r.id]! + 1e-9);
}

/**
 * The capacity of one environment on one task queue (id c2d-env-<environmentId>@<taskQueue>): at most maxJobs job workflows hold a
 * slot at once, and together they use no more of each resource (cpu, ram, disk, gpu) than the environment
 * has; others wait in order (first come, first served: the head of the queue is never overtaken, so a
 * large job is not starved by small ones), durably, and are never refused. A grant is a signal back to the
 * job workflow; a slot comes back by `release` or when its lease runs out (a job that was terminated
 * never releases). A job that waits too long (its queueMaxWaitTime) leaves the queue itself.
 */
export async function environmentSlots(environmentId: string, carried?: SlotsState): Promise<void> {
  const state: SlotsState = carried ?? { maxJobs: 1, holders: [], waiters: [] };
  let changed = false;

  const has = (id: string): boolean => state.holders.some((h) => h.workflowId === id) || state.waiters.some((w) => w.workflowId === id);
  const drop = (id: string): void => {
    state.holders = state.holders.filter((h) => h.workflowId !== id);
    state.waiters = state.waiters.filter((w) => w.workflowId !== id);
  };

  setHandler(acquireSignal, (req) => {
    state.maxJobs = req.maxJobs;
    if (req.totals) state.totals = req.totals;
    if (req.maxFreeJobs !== undefined) state.maxFreeJobs = req.maxFreeJobs;
    // a retried acquire of the same job must not queue it twice
    if (!has(req.workflowId)) state.waiters.push(req);
    changed = true;
  });
  setHandler(releaseSignal, (workflowId) => {
    drop(workflowId);
    changed = true;
  });
  setHandler(holdersQuery, () => state.holders.length);
  setHandler(waitersQuery, () => state.waiters.map((w) => w.workflowId));
  setHandler(resourcesInUseQuery, () => resourcesInUse(state.holders));

  const grant = async (req: AcquireRequest): Promise<void> => {
    state.holders.push({
      workflowId: req.workflowId,
      untilMs: Date.now() + req.leaseMs,
      ...(req.resources ? { resources: req.resources } : {}),
      ...(req.free ? { free: true } : {}),
    });
    try {
      await getExternalWorkflowHandle(req.workflowId).signal(slotGrantedSignal);
    } catch {
      // the job is gone (finished or terminated while waiting): its slot goes to the next one
      drop(req.workflowId);
      changed = true;
    }
  };

  for (;;) {
    const now = Date.now();
    state.holders = state.holders.filter((h) => h.untilMs > now);
    const grants: Promise<void>[] = [];
    for (let i = nextGrant(state); i !== undefined; i = nextGrant(state)) grants.push(grant(state.waiters.splice(i, 1)[0]!));
    await Promise.all(grants);
    if (changed) {
      changed = false;
      continue;
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof environmentSlots>(environmentId, state);
    }
    const idle = state.holders.length === 0 && state.waiters.length === 0;
    const nextExpiry = Math.min(...state.holders.map((h) => h.untilMs)) - Date.now();
    const woken = await condition(() => changed, idle ? IDLE_MS : Math.max(nextExpiry, 1));
    if (!woken && idle) return;
  }
}
