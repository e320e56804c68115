export { defaultProgramsDir, ProcessBackend, type ProcessBackendOptions } from './backend';
export { buildSandboxArgs, wrapSandboxCommand, type SandboxOptions } from './sandbox-args';
export { findRuntime } from './steps';
