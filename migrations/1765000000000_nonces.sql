-- Up Migration
-- The last accepted nonce of each consumer address (src/storage/pg-nonces.ts). `nonce` as it was sent,
-- `nonce_value` the same as an exact number: the compare-and-set compares these.
CREATE TABLE c2d_nonces (
  address text PRIMARY KEY CHECK (address ~ '^0x[0-9a-f]{40}$'),
  nonce text NOT NULL,
  nonce_value numeric NOT NULL CHECK (nonce_value >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE c2d_nonces;
