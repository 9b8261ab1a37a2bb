// Loaded by the extension host (extensionTestsPath, bundled by test/extension/build.ts): runs the
// suite named by OFFSITE_HOST_SUITE with mocha inside the real VS Code, reporting through the console
// (the launcher relays it).
import * as path from 'node:path';

const SUITES: Record<string, () => void> = {
  main: () => require('./extension.host'),
  untrusted: () => require('./untrusted.host'),
  bench: () => require('./bench.host'),
  multiroot: () => require('./multiroot.host'),
  edges: () => require('./edges.host'),
  empty: () => require('./empty.host'),
};

export function run(): Promise<void> {
  // mocha is ESM; Node 20.19+ loads it with require(). It stays outside the bundle.
  const { Mocha } = require('mocha') as { Mocha: typeof import('mocha') };
  const mocha = new Mocha({ ui: 'bdd', timeout: 120_000, color: false, reporter: 'spec' });
  // For working on one test: OFFSITE_HOST_GREP=regex (the main suite's tests build on each other).
  if (process.env.OFFSITE_HOST_GREP) mocha.grep(new RegExp(process.env.OFFSITE_HOST_GREP));
  const name = process.env.OFFSITE_HOST_SUITE ?? 'main';
  const load = SUITES[name];
  if (!load) return Promise.reject(new Error(`unknown suite ${name}`));
  // What mocha's loadFiles does for a file: expose describe/it, then evaluate the suite.
  mocha.suite.emit('pre-require', globalThis, path.join(__dirname, `${name}.host.js`), mocha);
  load();
  return new Promise((resolve, reject) => {
    mocha.run((failures: number) => (failures ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
