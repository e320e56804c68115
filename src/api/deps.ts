import type { Wallet } from 'ethers';
import type { EscrowPayments } from '../chain/escrow';
import type { FileDecryptor, RemoteFileSource } from '../assets/authorize';
import type { ComputeInitializer } from '../chain/initialize';
import type { MetadataReader } from '../chain/metadata-reader';
import type { OrderVerifier } from '../chain/orders';
import type { AssetResolver } from '../assets/resolver';
import type { ComputeBackend } from '../compute/backend';
import type { Environment } from '../domain/environment';
import type { Logger } from '../domain/logger';
import type { FetchPolicy } from '../net/guarded-fetch';
import type { NonceStore } from '../storage/nonces';
import type { ConsumedOrderStore } from '../storage/consumed-orders';
import type { LiveLogStore } from '../storage/live-logs';
import type { ResultStore } from '../storage/store';
import type { JobsService } from '../temporal/jobs-service';
import type { CodecEndpointSettings } from './routes/codec';

/** Per-window request budgets (docs/settings.md, C2D_RATE_LIMIT_*); 0 turns a budget off. */
export interface RateLimits {
  windowSeconds: number;
  /** requests per window and client IP on the signed and the expensive unsigned routes */
  perIp: number;
  /** signed requests per window and consumer address that pass their signature */
  perAddress: number;
}

/** Everything the API needs, wired by an entrypoint (or a test). */
export interface AppDeps {
  chainId: number;
  /** the provider's identity: its address is published, its key decrypts `/encrypt` ciphertext; never exposed */
  providerWallet: Wallet;
  version: string;
  environments: Environment[];
  jobs: JobsService;
  results: ResultStore;
  nonces: NonceStore;
  resolver: AssetResolver;
  /** the assets this provider knows itself (catalog, chain), served as Aquarius; default: `resolver` */
  localResolver?: AssetResolver;
  decryptor: FileDecryptor;
  /** readiness of the configured chain (e.g. asks its node for the block number); absent: no chain configured */
  chainPing?: () => Promise<void>;
  /** the backend running an environment: checks containers at start, serves live logs (on one host) */
  backendFor(environmentId: string): ComputeBackend | undefined;
  /** results in S3 (several hosts): running algorithms' logs as their workers ship them; absent: from the backend */
  liveLogs?: LiveLogStore;
  logger: Logger;
  /** 32 lower-case hex characters; random by default */
  newJobId?: () => string;
  /** signs provider fees and checks orders for `initializeCompute`; default: catalog assets only (no chain) */
  computeInitializer?: ComputeInitializer;
  /** checks the orders of on-chain `access` services for `download`; absent: no chain, on-chain downloads refused */
  orderVerifier?: OrderVerifier;
  /** fetches public algorithms other providers hold (through their `download`); absent: such algorithms are refused */
  remoteFiles?: RemoteFileSource;
  /** documents data NFTs published on chain, for `decrypt`; absent: no chain, `decrypt` refuses */
  metadata?: MetadataReader;
  /** lower-case addresses allowed to call `decrypt` besides the provider itself */
  authorizedDecrypters?: string[];
  /** the chain's fee token, shown for environments without their own `feeToken` */
  defaultFeeToken?: string;
  /** what asset and consumer URLs may reach besides public addresses (C2D_ALLOWED_PRIVATE_HOSTS); default: public only */
  fetchPolicy?: FetchPolicy;
  /** the Temporal Web UI's codec endpoint (/codec/decode, /codec/encode); default: disabled (403) */
  codecEndpoint?: CodecEndpointSettings;
  /** request budgets per IP and per consumer address (docs/security.md); absent: no rate limits */
  rateLimits?: RateLimits;
  /** running + queued jobs one consumer may have per environment; absent or 0: no cap */
  maxJobsPerConsumer?: number;
  /** orders (transferTxId) that already funded a job; absent: an order is not checked for reuse */
  consumedOrders?: ConsumedOrderStore;
  /** C2D v2 paid jobs: the Escrow contract on `chainId` (payment terms, the payer's funds); absent: paid v2 jobs are refused */
  escrow?: EscrowPayments;
}
