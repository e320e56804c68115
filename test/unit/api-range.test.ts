import express from 'express';
import request from 'supertest';
import { requestedRange } from '../../src/api/range';
import { RangeNotSatisfiableError } from '../../src/domain/errors';

/** A real Express request per case: the range comes from `req.range()`, as in the result route. */
const app = express().get('/', (req, res) => {
  try {
    res.json({ range: requestedRange(req, 100) ?? null });
  } catch (err) {
    res.status(416).json({ unsatisfiable: err instanceof RangeNotSatisfiableError && err.totalSize === 100 });
  }
});
const ask = (header: string | undefined) => {
  const req = request(app).get('/');
  return header === undefined ? req : req.set('Range', header);
};

describe('Range header', () => {
  it.each([
    [undefined, null],
    ['bytes=0-9', { start: 0, end: 9 }],
    ['bytes=5-', { start: 5, end: 99 }],
    ['bytes=0-500', { start: 0, end: 99 }],
    ['bytes=-3', { start: 97, end: 99 }],
    ['bytes=-500', { start: 0, end: 99 }],
    ['items=0-1', null],
    ['items=abc', null],
    ['bytes=0-1,5-6', null],
  ])('when the header is %s, then the range is %j', async (header, expected) => {
    expect((await ask(header).expect(200)).body).toEqual({ range: expected });
  });

  it.each(['bytes=abc', 'bytes=9-2', 'bytes=-', 'bytes=-0', 'bytes=100-', 'bytes=999-1000'])(
    'when the header is %s, then it is not satisfiable',
    async (header) => {
      expect((await ask(header).expect(416)).body).toEqual({ unsatisfiable: true });
    },
  );
});
