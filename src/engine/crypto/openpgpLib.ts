// openpgp.js, loaded on its first use rather than at every start. Evaluating it took ~30 ms of each
// process (with V8's code cache), a tenth of a no-change backup, which needs no openpgp.js at all once
// its recipients' keys are known (recipient.ts). The bundles keep it in dist/vendor-openpgp.js
// (esbuild.mjs), which a first call loads; under the tests' tsx this is Node's require of the package.
//
// Only types may be imported from 'openpgp' elsewhere: a value import would load it at start again.
import type * as OpenpgpModule from 'openpgp';

export type Openpgp = typeof OpenpgpModule;

let lib: Openpgp | undefined;

/** The openpgp.js module, loaded on the first call. */
export function openpgpLib(): Openpgp {
  return (lib ??= require('openpgp') as Openpgp);
}
