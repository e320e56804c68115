import { builtinModules } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { kubernetesOptionsSchema } from '../../src/domain/environment';

/** No image engine here: check what the Dockerfiles copy and run exists and fits together. */
const root = path.resolve(__dirname, '../..');
const imagesDir = path.join(root, 'pod-images');
const images = fs.readdirSync(imagesDir).filter((d) => fs.existsSync(path.join(imagesDir, d, 'Dockerfile')));
const dockerfile = (image: string): string => fs.readFileSync(path.join(imagesDir, image, 'Dockerfile'), 'utf8');
/** the build context the Dockerfile's own comment gives (`docker build ... <context>`) */
const contextOf = (image: string): string => {
  const m = /docker build (?:-f \S+ )?-t (\S+) (\S+)$/m.exec(dockerfile(image));
  if (!m) throw new Error(`${image}: no "docker build ... -t <tag> <context>" line`);
  return path.join(root, m[2]!);
};
const tagOf = (image: string): string => /docker build (?:-f \S+ )?-t (\S+)/.exec(dockerfile(image))![1]!;
/** the program the final stage runs: ENTRYPOINT or CMD as JSON, joined with the last WORKDIR */
function finalStage(image: string): { copied: Map<string, string>; run: string[]; workdir: string } {
  const stages = dockerfile(image).split(/^FROM /m);
  const last = stages[stages.length - 1]!;
  const copied = new Map<string, string>();
  for (const m of last.matchAll(/^COPY --from=build (\S+) (\S+)$/gm)) copied.set(m[2]!, m[1]!);
  const run = JSON.parse(/^(?:ENTRYPOINT|CMD) (\[.*\])$/m.exec(last)?.[1] ?? '[]') as string[];
  const workdirs = [...last.matchAll(/^WORKDIR (\S+)$/gm)].map((m) => m[1]!);
  return { copied, run, workdir: workdirs[workdirs.length - 1] ?? '/' };
}

describe('the pod images', () => {
  it('when listed, then there are the provider, configuration, publishing and Node.js/Python algorithm images', () => {
    expect(images.sort()).toEqual(['algo-node', 'algo-python', 'configure', 'provider', 'publish']);
  });

  it.each(images)('when %s is built, then every file it copies from the build context exists', (image) => {
    const context = contextOf(image);
    for (const m of dockerfile(image).matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)) {
      for (const src of m[1]!.split(/\s+/)) expect([image, src, fs.existsSync(path.join(context, src))]).toEqual([image, src, true]);
    }
  });

  it.each(['configure', 'publish'])(
    'when the %s image runs, then its entrypoint is our compiled step program, which needs Node built-ins only (the image has no node_modules)',
    (image) => {
      const { copied, run } = finalStage(image);
      expect(run[0]).toBe('node');
      const built = copied.get(run[1]!);
      expect(built).toBe(`/src/dist/src/entrypoints/${image}-step.js`);
      expect(fs.existsSync(path.join(root, `src/entrypoints/${image}-step.ts`))).toBe(true);
      // global setup compiled dist/: what the image copies
      const requires = (file: string): string[] =>
        [...fs.readFileSync(path.join(root, file.replace('/src/', '')), 'utf8').matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!);
      const required = requires(built!);
      expect(required.length).toBeGreaterThan(0);
      // our own modules (configure: the SSRF guard) are copied to the same place relative to the program, and need Node built-ins only
      for (const own of required.filter((r) => !builtinModules.includes(r.replace(/^node:/, '')))) {
        const ownBuilt = path.posix.join(path.posix.dirname(built!), `${own}.js`);
        expect(copied.get(path.posix.join(path.posix.dirname(run[1]!), `${own}.js`))).toBe(ownBuilt);
        expect(requires(ownBuilt).filter((r) => !builtinModules.includes(r.replace(/^node:/, '')))).toEqual([]);
      }
    },
  );

  it('when the provider image runs, then API and worker entrypoints the Deployments name are in it', () => {
    const { copied, workdir } = finalStage('provider');
    expect(copied.get('./dist/src')).toBe('/src/dist/src');
    for (const name of ['c2d-api', 'c2d-worker']) {
      const doc = YAML.parseAllDocuments(fs.readFileSync(path.join(root, 'k8s/base', `${name.slice(4)}.yaml`), 'utf8')).map(
        (d) => d.toJSON() as { kind: string; spec: { template: { spec: { containers: { image: string; command: string[] }[] } } } },
      );
      const c = doc.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0]!;
      expect(c.image).toBe(tagOf('provider'));
      expect(c.command[0]).toBe('node');
      expect(workdir).toBe('/app');
      expect(fs.existsSync(path.join(root, c.command[1]!.replace(/^dist\//, '').replace(/\.js$/, '.ts')))).toBe(true);
    }
  });

  it('when the kubernetes backend uses its default images, then they are the tags the configuration and publishing Dockerfiles build', () => {
    const defaults = kubernetesOptionsSchema.parse({});
    expect(defaults.images).toEqual({ configure: tagOf('configure'), publish: tagOf('publish') });
  });

  it('when k8s/ environments name algorithm images, then those are the base images built here', () => {
    const settings = YAML.parseAllDocuments(fs.readFileSync(path.join(root, 'k8s/base/settings.yaml'), 'utf8')).map(
      (d) => d.toJSON() as { metadata: { name: string }; data: Record<string, string> },
    );
    const envs = YAML.parse(settings.find((d) => d.metadata.name === 'c2d-environments')!.data['environments.yaml']!) as {
      kubernetes: { algorithmImages: Record<string, string>; images: Record<string, string> };
    }[];
    for (const env of envs) {
      expect(env.kubernetes.algorithmImages).toEqual({ node: tagOf('algo-node'), python: tagOf('algo-python') });
      expect(env.kubernetes.images).toEqual({ configure: tagOf('configure'), publish: tagOf('publish') });
    }
  });
});
