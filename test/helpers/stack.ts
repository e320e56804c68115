import type { EnvironmentInput } from '../../src/domain/environment';
import { type LocalStack, startLocalStack } from '../../src/entrypoints/local-stack';
import { testState } from './state';

export { serveFiles } from '../../src/entrypoints/local-stack';
export type Stack = LocalStack;

/** A whole provider on the run's Temporal server (see src/entrypoints/local-stack.ts). */
export const startStack = (opts: { environments: EnvironmentInput[]; env?: Record<string, string> }): Promise<Stack> =>
  startLocalStack({ temporalAddress: testState().temporalAddress, ...opts });
