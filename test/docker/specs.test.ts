import {
  algorithmContainer,
  configureContainer,
  containerName,
  jobLayout,
  networkHolderContainer,
  networkHolderName,
  publishContainer,
} from '../../src/compute/docker/specs';
import { hasDigest, resolveImage } from '../../src/compute/docker/images';
import { type DockerEnvironment, environmentSchema } from '../../src/domain/environment';

const jobId = 'ab'.repeat(16);
const digest = `sha256:${'c'.repeat(64)}`;
const environment = environmentSchema.parse({ id: 'd', backend: 'docker', ramGB: 0.5, cpuNumber: 2, docker: { maxProcesses: 64 } }) as DockerEnvironment;
const ctx = { jobId, environment, job: jobLayout('/w', jobId), user: '65534:65534' };
const spec = { container: { image: 'python', tag: '3', entrypoint: 'python3 $ALGO', checksum: '' }, env: { DIDS: '[]' }, allowNetwork: false };

describe('the docker containers of a job', () => {
  it('when named, then names come from the job id and the step, and a bad job id is refused', () => {
    expect(containerName(jobId, 'algorithm')).toBe(`c2d-${jobId}-algorithm`);
    expect(() => containerName('../x', 'algorithm')).toThrow(/invalid job id/);
  });

  it('when the algorithm container is built, then it has no network, a read-only root, no capabilities, a non-root user and the limits', () => {
    const c = algorithmContainer(ctx, spec, 'reg/python@' + digest);
    expect(c).toMatchObject({
      name: `c2d-${jobId}-algorithm`,
      Image: `reg/python@${digest}`,
      Entrypoint: ['/bin/sh', '-c'],
      Cmd: ['python3 $ALGO'],
      User: '65534:65534',
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        PidsLimit: 64,
        Memory: 512 * 1024 * 1024,
        MemorySwap: 512 * 1024 * 1024,
        NanoCpus: 2e9,
        Tmpfs: { '/tmp': expect.stringMatching(/^rw,nosuid,nodev,size=\d+$/) },
      },
    });
    expect(c.Env).toEqual(expect.arrayContaining(['DIDS=[]', 'ALGO=/data/transformations/algorithm', 'HOME=/tmp']));
    expect(c.HostConfig!.Binds).toEqual([
      `/w/${jobId}/data/inputs:/data/inputs:ro`,
      `/w/${jobId}/data/transformations:/data/transformations:ro`,
      `/w/${jobId}/data/ddos:/data/ddos:ro`,
      `/w/${jobId}/data/outputs:/data/outputs:rw`,
      `/w/${jobId}/data/logs:/data/logs:rw`,
    ]);
    expect(c.HostConfig!.DeviceRequests).toBeUndefined();
  });

  it("when the job has network access, then the algorithm joins the job's namespace and the holder container has no network of its own", () => {
    const c = algorithmContainer(ctx, spec, 'x', `container:${networkHolderName(jobId)}`);
    expect(c.NetworkDisabled).toBeUndefined();
    expect(c.HostConfig).toMatchObject({ NetworkMode: `container:c2d-${jobId}-network`, CapDrop: ['ALL'], ReadonlyRootfs: true });
    expect(algorithmContainer(ctx, spec, 'x', 'ns:/run/netns/c2d-x').HostConfig!.NetworkMode).toBe('ns:/run/netns/c2d-x');
    const holder = networkHolderContainer(ctx);
    expect(holder).toMatchObject({
      name: `c2d-${jobId}-network`,
      Image: environment.docker.images.publish,
      User: '65534:65534',
      HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], ReadonlyRootfs: true, SecurityOpt: ['no-new-privileges'] },
    });
    expect(holder.Labels).toMatchObject({ 'c2d.job': jobId });
  });

  it('when the environment has GPUs, then the algorithm asks for them', () => {
    const gpu = { ...ctx, environment: { ...environment, gpuNumber: 2 } };
    expect(algorithmContainer(gpu, spec, 'x').HostConfig!.DeviceRequests).toEqual([{ Driver: '', Count: 2, Capabilities: [['gpu']] }]);
  });

  it('when configure and publish are built, then only configure sees the spec and the network; publish reads the outputs read-only', () => {
    const conf = configureContainer(ctx);
    expect(conf.HostConfig).toMatchObject({ NetworkMode: 'host', ReadonlyRootfs: true, CapDrop: ['ALL'] });
    expect(conf.HostConfig!.Binds).toContain(`/w/${jobId}/secret:/run/c2d/secret:ro`);
    const pub = publishContainer(ctx);
    expect(pub.HostConfig).toMatchObject({ NetworkMode: 'none', ReadonlyRootfs: true });
    expect(pub.HostConfig!.Binds).toEqual([
      `/w/${jobId}/data/outputs:/data/outputs:ro`,
      `/w/${jobId}/publish:/results:rw`,
      `/w/${jobId}/reports:/run/c2d/reports:rw`,
    ]);
    expect(JSON.stringify(pub)).not.toContain('secret');
  });

  it('when the environment has an output budget, then the algorithm and publish cannot write a file past it and publish copies within it', () => {
    const budget = { ...ctx, environment: { ...environment, docker: { ...environment.docker, maxOutputBytes: 1000, maxOutputFiles: 7 } } };
    const fsize = [{ Name: 'fsize', Soft: 1001, Hard: 1001 }];
    expect(algorithmContainer(budget, spec, 'x').HostConfig!.Ulimits).toEqual(fsize);
    expect(publishContainer(budget).HostConfig!.Ulimits).toEqual(fsize);
    expect(publishContainer(budget).Cmd).toEqual(['/data/outputs', '/results', '/run/c2d/reports/publish.json', '--max-bytes=1000', '--max-files=7']);
    expect(publishContainer(budget, true).Cmd).toContain('--withhold');
    // default: diskGB
    expect(publishContainer(ctx).Cmd).toContain(`--max-bytes=${1024 ** 3}`);
    // the engine's own copy of the algorithm's output: bounded by the budget too (two files of twice it, plus a margin for the JSON and a lagging follower)
    expect(algorithmContainer(budget, spec, 'x').HostConfig!.LogConfig).toEqual({
      Type: 'json-file',
      Config: { 'max-size': String(2000 + 16 * 1024 * 1024), 'max-file': '2' },
    });
  });

  it("when any step is built, then the engine's own log of it is capped at the step log's cap", () => {
    const cap = { Type: 'json-file', Config: { 'max-size': String(2 * 64 * 1024 * 1024 + 16 * 1024 * 1024), 'max-file': '2' } };
    for (const c of [configureContainer(ctx), publishContainer(ctx), algorithmContainer(ctx, spec, 'x'), networkHolderContainer(ctx)])
      expect(c.HostConfig!.LogConfig).toEqual(cap);
  });
});

describe('which image an algorithm runs', () => {
  const opts = { algorithmImages: { python: 'reg.local/py:3.11' }, allowedImages: ['reg.local/algos/*'], allowAnyImage: false };
  it.each([
    ['an alias, unpinned', { image: 'python', tag: '3', checksum: '' }, { ref: 'reg.local/py:3.11', digest: null }],
    ['an alias, pinned by the checksum', { image: 'python', tag: '', checksum: digest }, { ref: `reg.local/py@${digest}`, digest }],
    ['an allowed image with a tag', { image: 'reg.local/algos/a', tag: 'v1', checksum: '' }, { ref: 'reg.local/algos/a:v1', digest: null }],
    [
      'an allowed image, pinned',
      { image: 'reg.local/algos/a', tag: 'v1', checksum: digest.toUpperCase().replace('SHA256', 'sha256') },
      { ref: `reg.local/algos/a@${digest}`, digest },
    ],
    ['an image naming the same digest', { image: `reg.local/algos/a@${digest}`, tag: '', checksum: digest }, { ref: `reg.local/algos/a@${digest}`, digest }],
  ])('when %s, then it runs as resolved', (_, container, expected) => {
    expect(resolveImage(opts, container)).toEqual(expected);
  });

  it.each([
    ['an image not allowed', { image: 'evil/x', tag: '', checksum: '' }, /not allowed in this environment; it runs: python, reg.local\/algos\/\*/],
    ['a checksum that is no manifest digest', { image: 'python', tag: '', checksum: 'md5:1' }, /must be the image's manifest digest/],
    ['an image naming another digest', { image: `reg.local/algos/a@sha256:${'d'.repeat(64)}`, tag: '', checksum: digest }, /the digests differ/],
  ])('when %s, then it is refused', (_, container, message) => {
    const r = resolveImage(opts, container);
    expect('error' in r && r.error).toMatch(message);
  });

  it('when allowAnyImage, then any valid reference runs', () => {
    expect(resolveImage({ ...opts, allowAnyImage: true }, { image: 'evil/x', tag: '', checksum: '' })).toEqual({ ref: 'evil/x:latest', digest: null });
  });

  it('when the engine lists repo digests, then the checksum is found in any repository', () => {
    expect(hasDigest([`a/b@${digest}`], digest)).toBe(true);
    expect(hasDigest([`a/b@sha256:${'e'.repeat(64)}`], digest)).toBe(false);
  });
});
