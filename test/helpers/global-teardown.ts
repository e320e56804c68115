import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { NFT_TABLE } from '../../src/compute/process/network';
import { setTimeout as sleep } from 'node:timers/promises';
import { testState } from './state';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export default async function globalTeardown(): Promise<void> {
  const state = testState();
  if (alive(state.temporalPid)) process.kill(state.temporalPid, 'SIGTERM');
  // The server writes its db until it has exited; remove its dir only then.
  for (let i = 0; i < 100 && alive(state.temporalPid); i++) await sleep(50);
  if (alive(state.temporalPid)) process.kill(state.temporalPid, 'SIGKILL');
  fs.rmSync(state.dir, { recursive: true, force: true, maxRetries: 5 });
  if (process.getuid?.() === 0 && state.nftTableBefore === false) spawnSync('nft', ['delete', 'table', 'inet', NFT_TABLE], { stdio: 'ignore' });
  // the process backend's job networks turn forwarding on (and leave it on in production, saying so): not on a test host
  if (process.getuid?.() === 0 && state.ipForwardBefore !== undefined) fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', state.ipForwardBefore);
  fs.rmSync(process.env.C2D_TEST_STATE ?? '', { force: true });
}
