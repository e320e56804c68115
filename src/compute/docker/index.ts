export { DockerBackend, type DockerBackendOptions } from './backend';
export { createDockerClient, DockerApiError, type DockerClient } from './client';
export { containerName, NAME_PREFIX } from './specs';
