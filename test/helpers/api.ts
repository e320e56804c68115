import { type BaseWallet, getBytes, keccak256, toUtf8Bytes } from 'ethers';
import { buildCatalogDdo, type CatalogAssetSpec, writeCatalogDdo } from '../../tools/catalog/publish';
import type { Logger } from '../../src/domain/logger';

/** Signs a Provider request as Ocean's client does: EIP-191 over the 32 bytes of keccak256(parts + nonce). */
export function signRequest(wallet: BaseWallet, parts: string[], nonce: string | number): Promise<string> {
  return wallet.signMessage(getBytes(keccak256(toUtf8Bytes(parts.join('') + String(nonce)))));
}

export type PublishOptions = CatalogAssetSpec;

/** Writes a catalog DDO whose files are encrypted for the provider's key; returns its DID. */
export async function publishCatalogAsset(dir: string, providerWallet: BaseWallet, spec: PublishOptions): Promise<string> {
  const ddo = buildCatalogDdo(providerWallet.signingKey.publicKey, spec);
  await writeCatalogDdo(dir, ddo);
  return ddo.id;
}

/** A container the process backend knows by default (node, any tag). */
export const nodeContainer = { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` };

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: object;
  msg: string;
}

/** A Logger that keeps what it was told, to assert on (e.g. that no URL was ever logged). */
export function recordingLogger(entries: LogEntry[] = []): Logger & { entries: LogEntry[] } {
  const make = (bindings: object): Logger & { entries: LogEntry[] } => ({
    entries,
    debug: (fields, msg) => entries.push({ level: 'debug', fields: { ...bindings, ...fields }, msg }),
    info: (fields, msg) => entries.push({ level: 'info', fields: { ...bindings, ...fields }, msg }),
    warn: (fields, msg) => entries.push({ level: 'warn', fields: { ...bindings, ...fields }, msg }),
    error: (fields, msg) => entries.push({ level: 'error', fields: { ...bindings, ...fields }, msg }),
    child: (more) => make({ ...bindings, ...more }),
  });
  return make({});
}
