import type { Request } from 'express';
import { RangeNotSatisfiableError } from '../domain/errors';

/** RFC 9110 §14.2: a Range in a unit we don't serve is ignored (range-parser's errors don't say the unit). */
const BYTES_UNIT = /^\s*bytes\s*=/i;
/** `bytes=-N` with N > 0: a suffix, the file's last N bytes. */
const SUFFIX = /^\s*bytes\s*=\s*-\s*0*[1-9]\d*\s*$/i;

/**
 * The one byte range a request asks of a file of `totalSize` bytes, by Express's `req.range()`
 * (range-parser); undefined for the whole file: no Range header, another unit, or several ranges (RFC
 * 9110 lets a server answer those with the whole file). A malformed or unsatisfiable byte range is 416.
 */
export function requestedRange(req: Request, totalSize: number): { start: number; end: number } | undefined {
  const header = req.get('Range');
  if (header === undefined || !BYTES_UNIT.test(header)) return undefined;
  const ranges = req.range(totalSize);
  if (ranges === undefined) return undefined;
  if (ranges === -1 || ranges === -2) {
    // range-parser 1.3 refuses a suffix longer than the file; RFC 9110 §14.1.2 serves the whole file (jshttp/range-parser#66)
    if (ranges === -1 && totalSize > 0 && SUFFIX.test(header)) return { start: 0, end: totalSize - 1 };
    throw new RangeNotSatisfiableError(totalSize);
  }
  return ranges.length === 1 ? ranges[0] : undefined;
}
