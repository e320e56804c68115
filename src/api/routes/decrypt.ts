import { createHash } from 'node:crypto';
import { getBytes } from 'ethers';
import { decrypt } from '../../assets/ecies';
import type { PublishedMetadata } from '../../chain/metadata-reader';
import { C2DError, ValidationError } from '../../domain/errors';
import { requireSignedRequest } from '../auth';
import { ForbiddenError } from '../errors';
import { handledError, textSchema } from '../responses';
import { route, SERVICES } from '../route';
import { decryptSchema } from '../schemas';

const FLAG_COMPRESSED = 1;
const FLAG_ENCRYPTED = 2;

const refuse = (code: string, message: string): never => {
  throw new C2DError('validation', code, message);
};

/** The plaintext of a published document: ECIES with the provider key when flag bit 1 is set. */
function plaintextOf(doc: PublishedMetadata, providerPrivateKey: string): Buffer {
  if (doc.flags & FLAG_COMPRESSED) return refuse('compressed_not_supported', 'Compressed documents (flags bit 0) are not supported by this provider');
  if (!(doc.flags & FLAG_ENCRYPTED)) return Buffer.from(doc.data);
  try {
    return decrypt(providerPrivateKey, doc.data);
  } catch {
    return refuse('decrypt_failed', 'Failed to decrypt: the document was not encrypted for this provider, or was altered');
  }
}

/**
 * `decrypt` (Ocean's Provider): gives an authorized decrypter — typically the Aquarius that indexes DDOs
 * published encrypted for this provider — the plaintext of a DDO a data NFT of our factory published on
 * chain, after checking it against the metaDataHash published with it. Only the provider itself and
 * the addresses in C2D_AUTHORIZED_DECRYPTERS may call it; it never decrypts ciphertext that was not
 * published as a DDO on chain (a service's `files` can therefore not be had this way).
 */
export const decryptRoute = route({
  name: 'decrypt',
  method: 'post',
  path: `${SERVICES}/decrypt`,
  summary:
    'The plaintext of a DDO a data NFT published encrypted for this provider, for authorized decrypters (signed: (transactionId or dataNftAddress) + decrypterAddress + chainId + nonce)',
  tags: ['publisher'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: decryptSchema },
  responses: {
    201: { description: 'The DDO as published (its sha256 is the metaDataHash published with it)', type: 'text/plain', schema: textSchema },
    403: handledError('The decrypter is neither this provider nor in C2D_AUTHORIZED_DECRYPTERS'),
  },
  handler: (deps) => {
    const authorized = new Set([deps.providerWallet.address.toLowerCase(), ...(deps.authorizedDecrypters ?? []).map((a) => a.toLowerCase())]);
    return async ({ input: body, res }) => {
      if (!authorized.has(body.decrypterAddress.toLowerCase())) {
        throw new ForbiddenError(
          'decrypter_not_authorized',
          `Decrypter not authorized: ${body.decrypterAddress} is not this provider and not in its C2D_AUTHORIZED_DECRYPTERS`,
        );
      }
      await requireSignedRequest(deps.nonces, {
        address: body.decrypterAddress,
        parts: [body.transactionId ?? body.dataNftAddress ?? '', body.decrypterAddress, body.chainId],
        nonce: body.nonce,
        signature: body.signature,
      });
      const metadata = deps.metadata;
      if (!metadata) throw new ValidationError({ chainId: ['this provider has no chain configured, so it decrypts nothing'] });
      if (Number(body.chainId) !== deps.chainId) throw new ValidationError({ chainId: [`unsupported chain id, this provider serves ${deps.chainId}`] });

      let doc: PublishedMetadata;
      if (body.transactionId) {
        doc =
          (await metadata.fromTransaction(body.transactionId)) ??
          refuse('metadata_not_found', 'transactionId: no successful MetadataCreated or MetadataUpdated event in this transaction on this chain');
      } else {
        // the schema requires these three with dataNftAddress
        doc = { nftAddress: body.dataNftAddress!, flags: body.flags!, data: getBytes(body.encryptedDocument!), metaDataHash: body.documentHash! };
      }
      if (!(await metadata.isFactoryNft(doc.nftAddress))) refuse('nft_not_from_factory', 'Asset not deployed by the data NFT factory of this chain');
      if (!body.transactionId && !(await metadata.hasPublished(doc.nftAddress, doc.metaDataHash))) {
        refuse('hash_not_published', 'documentHash: this data NFT never published a document with this metaDataHash');
      }
      const plaintext = plaintextOf(doc, deps.providerWallet.privateKey);
      if (`0x${createHash('sha256').update(plaintext).digest('hex')}` !== doc.metaDataHash) {
        refuse('checksum_mismatch', "Checksum doesn't match: the document's sha256 is not the metaDataHash published with it");
      }
      deps.logger.info({ decrypter: body.decrypterAddress.toLowerCase(), nft: doc.nftAddress }, 'document decrypted');
      res.status(201).type('text/plain').send(plaintext);
    };
  },
});
