import type { Ddo } from '../domain/ddo';

/** Finds a DDO by DID. Resolvers chain (catalog, then chain, then Aquarius); the first that knows the DID wins. */
export interface AssetResolver {
  /** null when this resolver does not know the DID; throws UnavailableError when its source is down. */
  resolve(did: string): Promise<Ddo | null>;
}

export class ChainedResolver implements AssetResolver {
  constructor(private readonly resolvers: AssetResolver[]) {}

  async resolve(did: string): Promise<Ddo | null> {
    for (const r of this.resolvers) {
      const ddo = await r.resolve(did);
      if (ddo) return ddo;
    }
    return null;
  }
}
