import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import { type AcquireRequest, acquireSignal, holdersQuery, releaseSignal, slotGrantedSignal, waitersQuery } from './definitions';

export interface SlotHolder {
  workflowId: string;
  /** epoch ms (workflow time) after which the slot is taken back */
  untilMs: number;
}

/** Carried across continue-as-new. */
export interface SlotsState {
  maxJobs: number;
  holders: SlotHolder[];
  /** first come, first served */
  waiters: AcquireRequest[];
}

/** With nobody holding or waiting for this long, the workflow ends; the next acquire starts it again. */
const IDLE_MS = 10 * 60_000;

/**
 * The capacity of one environment on one task queue (id c2d-env-<environmentId>@<taskQueue>): at most maxJobs job workflows hold a
 * slot at once; others wait in order, durably, and are never refused. A grant is a signal back to the
 * job workflow; a slot comes back by `release` or when its lease runs out (a job that was terminated
 * never releases).
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

  const grant = async (req: AcquireRequest): Promise<void> => {
    state.holders.push({ workflowId: req.workflowId, untilMs: Date.now() + req.leaseMs });
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
    while (state.holders.length < state.maxJobs && state.waiters.length > 0) {
      const next = state.waiters.shift();
      if (next) grants.push(grant(next));
    }
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
