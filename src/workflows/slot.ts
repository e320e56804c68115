import { CancellationScope, condition, getExternalWorkflowHandle, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities, EnvironmentLimits, Placement, SlotRef } from '../activities';
import { waiting } from './activity-options';
import { environmentWorkflowId, releaseSignal, slotGrantedSignal } from './definitions';

// One quick call to Temporal itself: as a local activity it costs no task dispatch and no extra workflow task.
const { acquireSlot } = proxyLocalActivities<Activities>({ ...waiting, summary: "Ask the environment's capacity workflow for a slot" });

/** A slot is held at most maxJobDuration plus this, so a job that vanished without releasing cannot block others forever. */
const LEASE_MARGIN_MS = 5 * 60_000;

/** A granted slot, with where the worker that asked for it would keep the job's workspace. */
export interface Granted {
  /** the asking worker's host (placeJob's answer, given by acquireSlot) */
  placement: Placement;
  /** how long the job waited for the grant (workflow time): a placement this old may name a host that has gone since */
  waitedMs: number;
}

export interface EnvironmentSlot {
  /**
   * Queues this job at the environment's capacity workflow (started on first use) and waits, durably, for
   * the grant; null when `maxWaitMs` passed first (the job has left the queue then).
   */
  acquire(limits: EnvironmentLimits, opts?: { maxWaitMs?: number; free?: boolean }): Promise<Granted | null>;
  /** Gives the slot back, or leaves the queue; once, and only if it was asked for. */
  release(): Promise<void>;
  /** The granted slot, for an activity that gives it back itself (the algorithm step, the moment the algorithm has ended); undefined when none is held. */
  handOver(): SlotRef | undefined;
  /** The activity it was handed over to gave it back: release() has nothing left to do. */
  givenBack(): void;
}

/**
 * This job's side of the capacity handshake with `environmentSlots` (id c2d-env-<environmentId>@<taskQueue>).
 * Call it before the workflow's first await: it registers the grant's signal handler.
 */
export function environmentSlot(environmentId: string): EnvironmentSlot {
  const { workflowId, taskQueue } = workflowInfo();
  const slotsWorkflowId = environmentWorkflowId(environmentId, taskQueue);
  let state: 'none' | 'requested' | 'released' = 'none';
  let granted = false;

  const signalRelease = async (): Promise<void> => {
    try {
      await getExternalWorkflowHandle(slotsWorkflowId).signal(releaseSignal, workflowId);
    } catch {
      // the capacity workflow is gone, and the slot with it
    }
  };

  setHandler(slotGrantedSignal, () => {
    granted = true;
    // a grant that crossed our release (a stop while waiting) goes straight back
    if (state === 'released') void CancellationScope.nonCancellable(signalRelease);
  });

  return {
    async acquire(limits, opts = {}) {
      state = 'requested';
      const askedAt = Date.now();
      const placement = await acquireSlot({
        environmentId,
        slotsWorkflowId,
        workflowId,
        maxJobs: limits.maxJobs,
        leaseMs: limits.maxJobDuration * 1000 + LEASE_MARGIN_MS,
        ...(limits.resources ? { resources: limits.resources, totals: limits.resourceTotals } : {}),
        ...(opts.free ? { free: true, maxFreeJobs: limits.maxFreeJobs } : {}),
      });
      const grant = (): Granted => ({ placement, waitedMs: Date.now() - askedAt });
      if (opts.maxWaitMs === undefined) {
        await condition(() => granted);
        return grant();
      }
      if (await condition(() => granted, opts.maxWaitMs)) return grant();
      await this.release();
      return null;
    },
    async release() {
      if (state !== 'requested') return;
      state = 'released';
      await signalRelease();
    },
    handOver() {
      return state === 'requested' && granted ? { slotsWorkflowId, workflowId } : undefined;
    },
    givenBack() {
      if (state === 'requested') state = 'released';
    },
  };
}
