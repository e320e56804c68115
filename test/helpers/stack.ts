import type { EnvironmentInput } from '../../src/domain/environment';
import { type LocalStack, serveFiles as serveLocalFiles, startLocalStack } from '../../tools/local-stack';
import { testState } from './state';

export type Stack = LocalStack;

/** The data servers this test file started: the stacks it starts afterwards allow exactly these (and nothing else on loopback). */
const dataServers: string[] = [];

/** A publisher's data server on loopback (see tools/local-stack.ts); stacks started after it may fetch from it. */
export async function serveFiles(files: Record<string, string | Buffer>, opts: { address?: string } = {}): ReturnType<typeof serveLocalFiles> {
  const served = await serveLocalFiles(files, opts);
  dataServers.push(served.host);
  return served;
}

/**
 * A whole provider on the run's Temporal server (see tools/local-stack.ts). It allows the data servers
 * started so far by serveFiles, plus `allowHosts` (e.g. another stack, a remote provider on loopback).
 */
export const startStack = (opts: { environments: EnvironmentInput[]; env?: Record<string, string>; allowHosts?: string[] }): Promise<Stack> =>
  startLocalStack({ temporalAddress: testState().temporalAddress, ...opts, allowHosts: [...dataServers, ...(opts.allowHosts ?? [])] });
