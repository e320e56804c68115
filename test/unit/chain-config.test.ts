import path from 'node:path';
import { loadConfig } from '../../src/config';
import { scratchDirs } from '../helpers/scratch';

const tmp = scratchDirs('c2d-config-');

describe('chain settings', () => {
  it('when no RPC URL is set, then no chain is served and the contracts file defaults into the data dir', () => {
    const dir = tmp();
    const c = loadConfig({ C2D_DATA_DIR: dir });
    expect(c.chains).toEqual({});
    expect(c.contractsFile).toBe(path.join(dir, 'contracts.json'));
  });

  it('when an RPC URL is set, then the chain is keyed by its chain id with fee token and confirmations', () => {
    const c = loadConfig({
      C2D_DATA_DIR: tmp(),
      C2D_CHAIN_ID: '1337',
      C2D_CHAIN_RPC_URL: 'http://127.0.0.1:9545',
      C2D_CONTRACTS_FILE: '/tmp/x/address.json',
      C2D_FEE_TOKEN: '0x' + 'ab'.repeat(20),
      C2D_CHAIN_CONFIRMATIONS: '2',
    });
    expect(c.chains).toEqual({
      1337: { chainId: 1337, rpcUrl: 'http://127.0.0.1:9545', contractsFile: '/tmp/x/address.json', feeToken: '0x' + 'ab'.repeat(20), confirmations: 2 },
    });
  });

  it('when a chain setting is malformed, then the error names the variable', () => {
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_CHAIN_RPC_URL: 'ws://x' })).toThrow(/C2D_CHAIN_RPC_URL/);
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_FEE_TOKEN: 'ocean' })).toThrow(/C2D_FEE_TOKEN/);
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_CHAIN_CONFIRMATIONS: '-1' })).toThrow(/C2D_CHAIN_CONFIRMATIONS/);
  });
});
