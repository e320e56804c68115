const esmPackages = '(@kubernetes/client-node|openid-client|oauth4webapi|jose)';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // the scale-out tests need PostgreSQL, the Temporal server and an S3 server: npm run test:cluster
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/cluster/'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }],
    // ESM-only packages (the kubernetes client and its auth libraries) become CommonJS for jest
    [`/node_modules/${esmPackages}/.+\\.js$`]: ['@swc/jest', { jsc: { target: 'es2022' } }],
  },
  transformIgnorePatterns: [`/node_modules/(?!${esmPackages}/)`],
  // @oceanprotocol/lib 8's dependency is an ES module that Node 20 requires natively and jest cannot: its own CommonJS build
  moduleNameMapper: { '^@oceanprotocol/ddo-js$': '<rootDir>/node_modules/@oceanprotocol/ddo-js/dist/ddo.module.cjs' },
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60000,
};
