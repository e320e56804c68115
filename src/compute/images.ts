/**
 * Names an image may be configured under, most specific first: `registry.io/org/node:20` →
 * `registry.io/org/node`, `org/node`, `node`. The tag never matters to the lookup (the process
 * backend's host has one version; a kubernetes environment maps a name to its own pinned image).
 */
export function imageCandidates(image: string): string[] {
  const noTag = image.replace(/@sha256:[0-9a-f]+$/i, '').replace(/:[^/:]*$/, '');
  const parts = noTag.split('/');
  const first = parts[0] ?? '';
  const noRegistry = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost') ? parts.slice(1) : parts;
  return [...new Set([noTag, noRegistry.join('/'), parts[parts.length - 1] ?? noTag, noTag.replace(/^library\//, '')])];
}
