// The engine, the CLI and the launchers are pure Node: no file under src/engine, src/cli or src/launch may import 'vscode'
// (the lint rule says so too; this test also catches dynamic requires and re-exports).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

function* walk(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

describe('architecture boundary', () => {
  for (const root of ['src/engine', 'src/cli', 'src/launch']) {
    it(`${root} never imports vscode`, () => {
      const files = [...walk(path.resolve(root))];
      assert.ok(files.length > 0, `${root} has TypeScript files`);
      const offenders = files.filter((f) => /(from\s+['"]vscode['"]|require\(\s*['"]vscode['"]\s*\)|import\(\s*['"]vscode['"]\s*\))/.test(fs.readFileSync(f, 'utf8')));
      assert.deepEqual(offenders, []);
    });
  }
});
