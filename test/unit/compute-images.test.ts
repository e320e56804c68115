import { defaultRuntimes } from '../../src/config';
import { imageCandidates } from '../../src/compute/images';
import { findRuntime } from '../../src/compute/process/steps';

describe('image → runtime', () => {
  test.each([
    ['node', ['node']],
    ['node:20-slim', ['node']],
    ['docker.io/library/node:20', ['docker.io/library/node', 'library/node', 'node']],
    ['oceanprotocol/algo_dockers:python-branin', ['oceanprotocol/algo_dockers', 'algo_dockers']],
    ['localhost:5000/team/python@sha256:abcd', ['localhost:5000/team/python', 'team/python', 'python']],
  ])('when the image is %s, then the names tried are %j', (image, want) => {
    expect(imageCandidates(image)).toEqual(want);
  });

  const python = defaultRuntimes('/usr/bin/node').python?.command;
  const runtimes = { ...defaultRuntimes('/usr/bin/node'), 'oceanprotocol/algo_dockers': { command: '/usr/bin/python3', names: ['python3'] } };
  test.each([
    ['node', '/usr/bin/node'],
    ['NODE:18', '/usr/bin/node'],
    ['python:3.11', python],
    ['docker.io/library/python:3', python],
    ['oceanprotocol/algo_dockers:python-branin', '/usr/bin/python3'],
    ['ruby', null],
    ['evil/node-but-not', null],
  ])('when the image is %s, then the runtime is %s', (image, command) => {
    expect(findRuntime(runtimes, image)?.command ?? null).toBe(command);
  });
});
