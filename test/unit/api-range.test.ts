import { parseRangeHeader } from '../../src/api/range';
import { RangeNotSatisfiableError } from '../../src/storage/range';

describe('Range header', () => {
  it.each([
    [undefined, undefined],
    ['bytes=0-9', { start: 0, end: 9 }],
    ['bytes=5-', { start: 5 }],
    ['bytes=-3', { start: 97 }],
    ['bytes=-500', { start: 0 }],
    ['items=0-1', undefined],
    ['bytes=0-1,5-6', undefined],
  ])('when the header is %s, then the range is %j', (header, expected) => {
    expect(parseRangeHeader(header, 100)).toEqual(expected);
  });

  it.each(['bytes=abc', 'bytes=9-2', 'bytes=-', 'bytes=-0'])('when the header is %s, then it is not satisfiable', (header) => {
    expect(() => parseRangeHeader(header, 100)).toThrow(RangeNotSatisfiableError);
  });
});
