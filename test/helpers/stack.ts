import type { EnvironmentInput } from '../../src/domain/environment';
import { type LocalStack, startLocalStack } from '../../tools/local-stack';
import { testState } from './state';

export { serveFiles } from '../../tools/local-stack';
export type Stack = LocalStack;

/** A whole provider on the run's Temporal server (see tools/local-stack.ts). */
export const startStack = (opts: { environments: EnvironmentInput[]; env?: Record<string, string> }): Promise<Stack> =>
  startLocalStack({ temporalAddress: testState().temporalAddress, ...opts });
