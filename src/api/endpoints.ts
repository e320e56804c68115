/** Every endpoint by the name clients look it up with in the root document (Ocean's names, plus ours). */
export const SERVICES = '/api/services';

export const endpoints = {
  nonce: ['GET', `${SERVICES}/nonce`],
  encrypt: ['POST', `${SERVICES}/encrypt`],
  // for authorized decrypters (C2D_AUTHORIZED_DECRYPTERS): a DDO a data NFT published encrypted for us
  decrypt: ['POST', `${SERVICES}/decrypt`],
  computeEnvironments: ['GET', `${SERVICES}/computeEnvironments`],
  computeStart: ['POST', `${SERVICES}/compute`],
  computeStatus: ['GET', `${SERVICES}/compute`],
  computeStop: ['PUT', `${SERVICES}/compute`],
  computeDelete: ['DELETE', `${SERVICES}/compute`],
  computeResult: ['GET', `${SERVICES}/computeResult`],
  // a file of an `access` service (public algorithms, downloadable datasets); `compute` services never
  download: ['GET', `${SERVICES}/download`],
  initializeCompute: ['POST', `${SERVICES}/initializeCompute`],
  // Ocean's clients POST {did, serviceId}; GET with a query string works too
  fileinfo: ['POST', `${SERVICES}/fileinfo`],
  validateContainer: ['POST', `${SERVICES}/validateContainer`],
  // ours: the algorithm's log, live while it runs
  computeLogs: ['GET', `${SERVICES}/computeLogs`],
} as const satisfies Record<string, readonly [string, string]>;

/** Routes that take a signature (HEAD on them is refused). */
export const signedPaths = [endpoints.computeStart[1], endpoints.computeResult[1], endpoints.computeLogs[1], endpoints.decrypt[1], endpoints.download[1]] as const;
