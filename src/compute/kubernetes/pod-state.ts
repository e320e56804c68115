/**
 * How a step's pod stands, read from the pod's status alone (pure; table tests in test/unit/k8s-specs.test.ts).
 * Terminal states become the step's StepOutcome; a pull failure is terminal too, so a job never waits on an
 * image that will not come.
 */
import type { StepName, StepOutcome } from '../backend';
import type { V1Pod } from './client';
import { NETWORK_GATE } from './specs';

/** Container waiting reasons that mean the image will not run: the step ends instead of waiting on kubelet's back-off. */
export const IMAGE_PULL_FAILURES = [
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'RegistryUnavailable',
  'SignatureValidationFailed',
];
/** Waiting reasons of a container that cannot be created as specified (they do not heal by waiting either). */
const CREATE_FAILURES = ['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError'];

export type PodState = { kind: 'pending'; detail: string } | { kind: 'running' } | { kind: 'ended'; outcome: Omit<StepOutcome, 'reattached'> };

const MAX_REASON = 300;

const clip = (s: string): string => (s.length > MAX_REASON ? `${s.slice(0, MAX_REASON)}…` : s);

function parseReport(message: string | undefined): unknown {
  if (!message?.trim()) return undefined;
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return undefined;
  }
}

/** The step's state from its pod (container `step`, see specs.ts). */
export function podState(pod: V1Pod, step: StepName): PodState {
  const status = pod.status ?? {};
  const container = status.containerStatuses?.find((c) => c.name === step) ?? status.containerStatuses?.[0];
  const terminated = container?.state?.terminated;
  const phase = status.phase ?? 'Pending';

  if (status.reason === 'DeadlineExceeded') {
    return { kind: 'ended', outcome: { exitCode: terminated?.exitCode ?? null, oomKilled: false, reason: 'deadline' } };
  }
  if (terminated) {
    const oomKilled = terminated.reason === 'OOMKilled';
    const report = parseReport(terminated.message);
    return {
      kind: 'ended',
      outcome: {
        exitCode: terminated.exitCode,
        oomKilled,
        reason: oomKilled ? 'oom' : '',
        ...(report !== undefined ? { report } : {}),
      },
    };
  }
  const gate = status.initContainerStatuses?.find((c) => c.name === NETWORK_GATE)?.state?.terminated;
  if (gate && gate.exitCode !== 0) {
    const why = gate.message?.trim() || `the network gate exited ${gate.exitCode}`;
    return { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: `start-failed: network isolation not confirmed: ${clip(why)}` } };
  }
  if (phase === 'Failed' || phase === 'Succeeded') {
    // ended without a container exit: evicted, or never started
    const why = [status.reason, status.message].filter(Boolean).join(': ') || 'the pod failed';
    return { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: `start-failed: ${clip(why)}` } };
  }
  const waiting = container?.state?.waiting;
  if (waiting?.reason && IMAGE_PULL_FAILURES.includes(waiting.reason)) {
    const image = pod.spec?.containers.find((c) => c.name === step)?.image ?? container?.image ?? '';
    return {
      kind: 'ended',
      outcome: { exitCode: null, oomKilled: false, reason: `image-pull: image ${JSON.stringify(image)} cannot be pulled (${waiting.reason})` },
    };
  }
  if (waiting?.reason && CREATE_FAILURES.includes(waiting.reason)) {
    return {
      kind: 'ended',
      outcome: { exitCode: null, oomKilled: false, reason: `start-failed: ${clip([waiting.reason, waiting.message].filter(Boolean).join(': '))}` },
    };
  }
  if (phase === 'Running' || container?.state?.running) return { kind: 'running' };
  const unscheduled = status.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  return { kind: 'pending', detail: clip(waiting?.reason ?? unscheduled?.reason ?? (pod.spec?.nodeName ? 'starting' : 'waiting to be scheduled')) };
}

/** Whether the step's container has started (its log can be read). */
export function containerStarted(pod: V1Pod, step: StepName): boolean {
  const c = pod.status?.containerStatuses?.find((s) => s.name === step);
  return Boolean(c?.state?.running || c?.state?.terminated);
}
