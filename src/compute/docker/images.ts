/**
 * Which image an algorithm runs, Ocean's way: `container.checksum` is the image's manifest digest, so
 * the engine pulls and runs `image@checksum` and a moved tag cannot swap the code a publisher reviewed.
 * Pure functions (table tests in test/docker/images.test.ts).
 */
import type { DockerOptions } from '../../domain/environment';
import type { ContainerSpec } from '../../domain/job';
import { imageCandidates } from '../images';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const REFERENCE = /^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*$/;

export type ResolvedImage = { ref: string; digest: string | null } | { error: string };

/** `*` matches any run of characters; everything else literally. */
const matches = (pattern: string, s: string): boolean =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*')}$`,
  ).test(s);

/** repository and tag of `image` (tag: the image's own, else the container's, else latest); digest when the image names one */
function parse(image: string, tag: string): { repo: string; tag: string; digest: string | null } {
  const at = image.indexOf('@');
  const digest = at >= 0 ? image.slice(at + 1).toLowerCase() : null;
  const named = at >= 0 ? image.slice(0, at) : image;
  const m = /^(.*?)(?::([^/:]+))?$/.exec(named)!;
  return { repo: m[1]!, tag: m[2] ?? (tag.trim() || 'latest'), digest };
}

/**
 * The reference the engine pulls and runs for the container, or why it may not run: an alias of
 * `algorithmImages` (tag and registry ignored), else the image as given when `allowedImages` matches
 * it or `allowAnyImage`; pinned to `checksum` when there is one (which must be a manifest digest, and
 * the one the image names, if it names one).
 */
export function resolveImage(
  d: Pick<DockerOptions, 'algorithmImages' | 'allowedImages' | 'allowAnyImage'>,
  c: Pick<ContainerSpec, 'image' | 'tag' | 'checksum'>,
): ResolvedImage {
  const image = c.image.trim();
  const checksum = c.checksum.trim().toLowerCase();
  if (checksum && !DIGEST.test(checksum))
    return { error: `container.checksum of "${image}" must be the image's manifest digest (sha256:<64 hex digits>), not "${c.checksum.slice(0, 80)}"` };
  const alias = imageCandidates(image.toLowerCase())
    .map((n) => d.algorithmImages[n])
    .find((m) => m !== undefined);
  const given = parse(alias ?? image, alias ? '' : c.tag);
  if (!alias) {
    const bare = given.repo;
    const allowed = d.allowAnyImage || d.allowedImages.some((p) => matches(p, bare) || matches(p, `${bare}:${given.tag}`));
    if (!allowed) {
      const known = [...Object.keys(d.algorithmImages), ...d.allowedImages];
      return { error: `image "${image}" is not allowed in this environment; it runs: ${known.join(', ') || 'no algorithm images'}` };
    }
  }
  if (given.digest && !DIGEST.test(given.digest)) return { error: `image "${image}" names an invalid digest` };
  if (given.digest && checksum && given.digest !== checksum)
    return { error: `image "${image}" is pinned to ${given.digest} but container.checksum is ${checksum}: the digests differ` };
  const digest = checksum || given.digest;
  const ref = digest ? `${given.repo}@${digest}` : `${given.repo}:${given.tag}`;
  if (!REFERENCE.test(ref.replace(/@sha256:[0-9a-f]{64}$/, ''))) return { error: `image "${image}" is not a valid image reference` };
  return { ref, digest };
}

/** Whether the engine's RepoDigests of an image include the digest (any repository). */
export const hasDigest = (repoDigests: string[], digest: string): boolean => repoDigests.some((r) => r.toLowerCase().endsWith(`@${digest}`));
