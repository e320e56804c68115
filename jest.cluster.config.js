// `npm run test:cluster`: the scale-out parts against real servers (PostgreSQL, Temporal on PostgreSQL,
// an S3-compatible server), started by each test file itself; none of the main suite's global setup.
const base = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  roots: ['<rootDir>/test/cluster'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 120000,
};
