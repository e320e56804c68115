/**
 * Suites that need root: network namespaces and nftables, a Docker engine of our own, files owned by
 * another uid. As root (CI, `bash .ci/run`) they run. As an ordinary user (`npm test` in a clone of your
 * own) they are reported as skipped, with what they need in their name, except where CI is set: there a
 * skip would hide a regression, so the suite fails instead and says why.
 */
type Suite = (name: string, fn: () => void) => void;

const root = process.getuid?.() === 0;

export function describeAsRoot(needs: string): Suite {
  if (root) return describe;
  if (process.env.CI) {
    return (name, _fn) =>
      describe(name, () => {
        test(`needs root (${needs})`, () => {
          throw new Error(`CI runs every test, and this suite needs root to run (${needs}): run it as root`);
        });
      });
  }
  return (name, fn) => describe.skip(`${name} [skipped: needs root — ${needs}]`, fn);
}
