import { ValidationError } from '../domain/errors';

/** Thrown when a requested byte range lies outside the file (HTTP 416); carries the size for Content-Range. */
export class RangeNotSatisfiableError extends ValidationError {
  constructor(readonly totalSize: number) {
    super({ range: [`outside the file (${totalSize} bytes)`] }, 'Range not satisfiable');
    this.name = 'RangeNotSatisfiableError';
  }
}

/** The inclusive byte range to serve, or a RangeNotSatisfiableError. `end` past the file is clamped, as HTTP says. */
export function resolveRange(range: { start: number; end?: number }, totalSize: number): { start: number; end: number } {
  const end = Math.min(range.end ?? totalSize - 1, totalSize - 1);
  if (!Number.isInteger(range.start) || range.start < 0 || range.start >= totalSize || end < range.start) {
    throw new RangeNotSatisfiableError(totalSize);
  }
  return { start: range.start, end };
}
