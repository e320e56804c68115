import { RangeNotSatisfiableError } from '../storage/range';

/**
 * A single `Range: bytes=…` request as a start and optional end; undefined when there is no Range
 * header or one we choose to ignore (another unit, several ranges — RFC 9110 lets us serve the whole file).
 * A malformed byte range is refused with 416.
 */
export function parseRangeHeader(header: string | undefined, totalSize: number): { start: number; end?: number } | undefined {
  if (!header) return undefined;
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!match?.[1] || match[1].includes(',')) return undefined;
  const spec = /^(\d*)-(\d*)$/.exec(match[1].trim());
  if (!spec) throw new RangeNotSatisfiableError(totalSize);
  const [, first = '', last = ''] = spec;
  if (first === '' && last === '') throw new RangeNotSatisfiableError(totalSize);
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) throw new RangeNotSatisfiableError(totalSize);
    return { start: Math.max(0, totalSize - suffix) };
  }
  const start = Number(first);
  if (last === '') return { start };
  const end = Number(last);
  if (end < start) throw new RangeNotSatisfiableError(totalSize);
  return { start, end };
}
