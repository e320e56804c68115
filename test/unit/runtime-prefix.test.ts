import { unsafeRuntimePrefix } from '../../src/compute/process/setup';
import { runtimePrefix } from '../../src/compute/process/sandbox-args';

const host = { dataDir: '/srv/c2d/data', homes: ['/root', '/home', '/home/alice'] };

describe('runtime prefixes bound into sandboxes', () => {
  it.each([
    ['/bin/node', /it is \/ \(the whole host\)/],
    ['/home/bin/python3', /holds the home directory \/home/],
    ['/home/alice/bin/node', /holds the home directory \/home\/alice/],
    ['/root/bin/node', /holds the home directory \/root/],
    ['/srv/bin/node', /holds the data dir \/srv\/c2d\/data/],
    ['/srv/c2d/bin/node', /holds the data dir/],
  ])('when a runtime is %s, then its prefix is refused: %s', (command, why) => {
    const prefix = runtimePrefix(command);
    expect(prefix).not.toBeNull();
    expect(unsafeRuntimePrefix(prefix!, host)).toMatch(why);
  });

  it.each(['/opt/node/bin/node', '/home/alice/.nvm/versions/node/v20.1.0/bin/node', '/var/lib/c2d/abc/runtimes/node/bin/node'])(
    'when a runtime is %s, then its prefix shows that install only and is accepted',
    (command) => {
      expect(unsafeRuntimePrefix(runtimePrefix(command)!, host)).toBeNull();
    },
  );

  it('when a runtime lives in /usr, then nothing beyond /usr is bound', () => {
    expect(runtimePrefix('/usr/bin/python3')).toBeNull();
  });
});
