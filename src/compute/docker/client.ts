/**
 * The one file that talks to the engine (dockerode over the Docker Engine API; Podman's
 * Docker-compatible service answers the same calls). Everything else sees this narrow interface.
 */
import { PassThrough, type Writable } from 'node:stream';
import Docker from 'dockerode';

/** An answer of the engine that is not a success (status: the HTTP status; 0 when the engine did not answer). */
export class DockerApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DockerApiError';
  }
}

export interface ContainerState {
  id: string;
  /** created | running | exited | … */
  status: string;
  running: boolean;
  /** false while the container was created but never started */
  started: boolean;
  startedAt: number | null;
  exitCode: number;
  oomKilled: boolean;
  /** the engine's error when the container could not start */
  error: string;
  /** host pid of the container's first process while it runs */
  pid: number;
}

export type Ulimit = Docker.Ulimit;

/** Docker's create body (Engine API `ContainerCreate`), as far as we use it. */
export type ContainerCreateBody = Docker.ContainerCreateOptions & { name: string };

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

export interface DockerClient {
  /** engine name and version: `Docker Engine 20.10.24`, `Podman Engine 4.3.1` */
  engine(): Promise<{ name: string; version: string; podman: boolean }>;
  /** creates the container; false when one of that name exists already */
  create(body: ContainerCreateBody): Promise<boolean>;
  inspect(name: string): Promise<ContainerState | null>;
  /** starts it unless it is running already */
  start(name: string): Promise<void>;
  /** resolves when the container has exited (at once if it has) */
  wait(name: string, signal: AbortSignal): Promise<void>;
  kill(name: string): Promise<void>;
  /** force-removes the container; not found is success */
  remove(name: string): Promise<void>;
  /** writes stdout and stderr of the container, from its first byte, to `out` until it ends (follow) or now */
  logs(name: string, out: Writable, opts: { follow: boolean; signal?: AbortSignal }): Promise<void>;
  /** the manifest digests the engine knows the image under (`repo@sha256:…`), or null when it lacks the image */
  imageDigests(ref: string): Promise<string[] | null>;
  /** pulls the image, calling onProgress with each distinct progress line */
  pull(ref: string, auth: RegistryAuth | undefined, onProgress: (line: string) => void, signal: AbortSignal): Promise<void>;
  /** the ulimits the engine gave the container (`nofile`, …: the names the create body takes); none when it is not found */
  ulimits(name: string): Promise<Ulimit[]>;
  /** names of the containers whose name starts with the prefix (running or not) */
  listNames(prefix: string): Promise<string[]>;
}

const NEVER = '0001-01-01T00:00:00Z';

function apiError(err: unknown): DockerApiError {
  if (err instanceof DockerApiError) return err;
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  const message = e.json?.message ?? e.message ?? String(err);
  return new DockerApiError(e.statusCode ?? 0, message.trim(), { cause: err });
}

const status = (err: unknown): number => (err as { statusCode?: number }).statusCode ?? 0;

export function createDockerClient(socketPath: string): DockerClient {
  const docker = new Docker({ socketPath });
  const call = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw apiError(err);
    }
  };
  return {
    engine: () =>
      call(async () => {
        const v = await docker.version();
        const name = v.Components?.[0]?.Name ?? 'Engine';
        return { name, version: v.Version, podman: /podman/i.test(name) || (v.Components ?? []).some((c) => /podman/i.test(c.Name)) };
      }),
    create: async (body) => {
      try {
        await docker.createContainer(body);
        return true;
      } catch (err) {
        if (status(err) === 409) return false;
        throw apiError(err);
      }
    },
    inspect: async (name) => {
      try {
        const c = await docker.getContainer(name).inspect();
        const s = c.State;
        const startedAt = s.StartedAt && !s.StartedAt.startsWith(NEVER.slice(0, 4)) ? Date.parse(s.StartedAt) : null;
        return {
          id: c.Id,
          status: s.Status,
          running: s.Running,
          started: s.Status !== 'created' && s.Status !== 'configured' && startedAt !== null,
          startedAt,
          exitCode: s.ExitCode,
          oomKilled: s.OOMKilled,
          error: s.Error ?? '',
          pid: s.Pid,
        };
      } catch (err) {
        if (status(err) === 404) return null;
        throw apiError(err);
      }
    },
    start: async (name) => {
      try {
        await docker.getContainer(name).start();
      } catch (err) {
        if (status(err) === 304) return;
        throw apiError(err);
      }
    },
    wait: (name, signal) => call(async () => void (await docker.getContainer(name).wait({ abortSignal: signal } as Docker.ContainerWaitOptions))),
    kill: async (name) => {
      try {
        await docker.getContainer(name).kill();
      } catch (err) {
        // not found, or not running (Docker 409, Podman 409/500 "can only kill running containers")
        if ([404, 409].includes(status(err)) || /not running|can only kill/i.test(apiError(err).message)) return;
        throw apiError(err);
      }
    },
    remove: async (name) => {
      try {
        await docker.getContainer(name).remove({ force: true, v: true });
      } catch (err) {
        // not found; or already being removed
        if (status(err) === 404 || (status(err) === 409 && /in progress/i.test(apiError(err).message))) return;
        throw apiError(err);
      }
    },
    logs: (name, out, opts) =>
      call(async () => {
        const container = docker.getContainer(name);
        if (!opts.follow) {
          const buf = await container.logs({ stdout: true, stderr: true, follow: false });
          const pass = new PassThrough();
          const done = new Promise<void>((resolve) => pass.on('end', resolve));
          docker.modem.demuxStream(pass, out, out);
          pass.end(buf);
          await done;
          return;
        }
        const stream = await container.logs({ stdout: true, stderr: true, follow: true, abortSignal: opts.signal } as Docker.ContainerLogsOptions & {
          follow: true;
        });
        await new Promise<void>((resolve, reject) => {
          docker.modem.demuxStream(stream, out, out);
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', (err: Error) => (opts.signal?.aborted ? resolve() : reject(err)));
        });
      }),
    imageDigests: async (ref) => {
      try {
        const img = await docker.getImage(ref).inspect();
        return img.RepoDigests ?? [];
      } catch (err) {
        if (status(err) === 404) return null;
        throw apiError(err);
      }
    },
    pull: (ref, auth, onProgress, signal) =>
      call(async () => {
        const stream = await docker.pull(ref, { ...(auth ? { authconfig: auth } : {}), abortSignal: signal });
        let last = '';
        await new Promise<void>((resolve, reject) => {
          // an abort ends the pull: the engine cancels it once its client has gone
          const onAbort = (): void => {
            reject(new DockerApiError(0, 'the pull was aborted', { cause: signal.reason }));
            (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
          };
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort, { once: true });
          docker.modem.followProgress(
            stream,
            (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
              signal.removeEventListener('abort', onAbort);
              const failed = events?.find((e) => e.error);
              if (err) reject(err);
              else if (failed) reject(new DockerApiError(404, failed.errorDetail?.message ?? failed.error ?? 'pull failed'));
              else resolve();
            },
            (e: { status?: string; id?: string; progress?: string; error?: string }) => {
              if (e.error || !e.status) return;
              // one line per layer and state, not one per byte count
              const line = `${e.id ? `${e.id}: ` : ''}${e.status}`;
              if (line !== last) onProgress(line);
              last = line;
            },
          );
        });
      }),
    ulimits: async (name) => {
      try {
        const c = await docker.getContainer(name).inspect();
        // Podman reports RLIMIT_NOFILE where a create body says nofile
        return (c.HostConfig.Ulimits ?? []).map((u) => ({ ...u, Name: u.Name?.replace(/^RLIMIT_/, '').toLowerCase() }));
      } catch (err) {
        if (status(err) === 404) return [];
        throw apiError(err);
      }
    },
    listNames: (prefix) =>
      call(async () => {
        const list = await docker.listContainers({ all: true, filters: { name: [prefix] } });
        return list.flatMap((c) => c.Names.map((n) => n.replace(/^\//, ''))).filter((n) => n.startsWith(prefix));
      }),
  };
}
