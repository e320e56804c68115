export { KubernetesBackend, type KubernetesBackendOptions } from './backend';
export { createKubeClient, type KubeClient } from './client';
