/**
 * The built dashboard (dist/dashboard/app.js and app.css, written by `npm run build` through
 * scripts/bundle-dashboard.ts) is what an installed package serves; from the sources there is none.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { prebuiltDashboard } from '../../../src/api/dashboard.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('the built dashboard', () => {
  it('is read from a directory holding app.js and app.css, with ETags of their contents', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-dash-'));
    try {
      writeFileSync(join(dir, 'app.js'), 'console.log(1)');
      writeFileSync(join(dir, 'app.css'), 'body{}');
      const r = prebuiltDashboard(pathToFileURL(dir + '/'));
      assert.ok(r?.ok);
      assert.equal(r.bundle.js, 'console.log(1)');
      assert.equal(r.bundle.css, 'body{}');
      writeFileSync(join(dir, 'app.js'), 'console.log(2)');
      const again = prebuiltDashboard(pathToFileURL(dir + '/'));
      assert.ok(again?.ok);
      assert.notEqual(again.bundle.jsTag, r.bundle.jsTag);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is absent when running from the sources (src/dashboard holds no app.js)', () => {
    assert.equal(prebuiltDashboard(), undefined);
  });

  it('scripts/bundle-dashboard.ts writes a bundle that mounts the app', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-dash-'));
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bundle-dashboard.ts'), dir], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const built = prebuiltDashboard(pathToFileURL(dir + '/'));
      assert.ok(built?.ok);
      assert.match(built.bundle.js, /Refract/);
      assert.match(built.bundle.css, /uplot/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
