/**
 * What the package is made of, without the network: the manifest (no TypeScript loader among the production
 * dependencies, a build that runs on install and pack), the tarball's file list (`npm pack --dry-run`), and
 * bin/refract.js's choice between the build (dist/) and the sources (src/ through tsx), run from copies in a
 * temp dir. No ports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Manifest {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  scripts: Record<string, string>;
  files: string[];
  bin: Record<string, string>;
  engines: { node: string };
}
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;

describe('package.json', () => {
  it('has no TypeScript loader or compiler among its production dependencies; the build runs on install and pack', () => {
    for (const name of ['tsx', 'typescript', 'ts-node', 'esbuild']) assert.ok(!(name in manifest.dependencies), `${name} is not a production dependency`);
    assert.ok('tsx' in manifest.devDependencies && 'typescript' in manifest.devDependencies);
    assert.match(manifest.scripts['build']!, /tsc -p tsconfig\.build\.json/);
    assert.match(manifest.scripts['prepare']!, /npm run build/);
    assert.deepEqual(manifest.bin, { refract: 'bin/refract.js' });
  });

  it('engines admits the supported Node lines (20.19+, 22.13+, 24+) and this runtime, and no odd line before 24', () => {
    // Only the forms package.json uses: `^MAJOR.MINOR` and `>=MAJOR`, joined by `||`.
    const satisfies = (range: string, version: string): boolean => {
      const [maj, min] = version.replace(/^v/, '').split('.').map(Number) as [number, number];
      return range.split('||').some((part) => {
        const p = part.trim();
        const caret = /^\^(\d+)\.(\d+)$/.exec(p);
        if (caret) return maj === Number(caret[1]) && min >= Number(caret[2]);
        const ge = /^>=(\d+)$/.exec(p);
        if (ge) return maj >= Number(ge[1]);
        throw new Error(`engines.node part ${p} is not ^MAJOR.MINOR or >=MAJOR`);
      });
    };
    const range = manifest.engines.node;
    for (const v of ['20.19.0', '20.20.2', '22.13.0', '22.22.0', '24.0.0', '24.21.0', '26.1.0']) assert.ok(satisfies(range, v), `${range} admits ${v}`);
    for (const v of ['18.20.0', '20.18.3', '21.7.0', '22.12.0', '23.11.0']) assert.ok(!satisfies(range, v), `${range} refuses ${v}`);
    assert.ok(satisfies(range, process.version), `${range} admits this runtime ${process.version}`);
  });

  it('packs the build, the bin, the example, docs and deploy/, and no sources, tests or local data', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const files = (JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'bin/refract.js', 'examples/refract.yaml', 'docs/deploy.md', 'docs/configuration.md', 'deploy/Dockerfile', 'deploy/refract.service', 'deploy/refract.yaml']) {
      assert.ok(files.includes(f), `${f} is packed`);
    }
    if (existsSync(join(ROOT, 'dist', 'cli.js'))) {
      assert.ok(files.includes('dist/cli.js'), 'dist/cli.js is packed');
      assert.ok(files.includes('dist/dashboard/app.js') && files.includes('dist/dashboard/app.css'), 'the built dashboard is packed');
    }
    const unwanted = files.filter((f) => /^(src|test|bench|scenarios|node_modules)\//.test(f) || /(^|\/)\.refract\//.test(f) || /\.ts$|\.map$|^tsconfig/.test(f));
    assert.deepEqual(unwanted, []);
  });
});

describe('bin/refract.js', () => {
  /** A copy of the launcher in DIR/bin with a fake dist/cli.js and src/cli.ts that each print who they are. */
  function layout(opts: { dist: boolean; src: boolean; tsx: boolean }): string {
    const dir = mkdtempSync(join(tmpdir(), 'refract-bin-'));
    mkdirSync(join(dir, 'bin'));
    copyFileSync(join(ROOT, 'bin', 'refract.js'), join(dir, 'bin', 'refract.js'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    if (opts.dist) {
      mkdirSync(join(dir, 'dist'));
      writeFileSync(join(dir, 'dist', 'cli.js'), "process.stdout.write('dist ' + process.argv.slice(2).join(' '));\n");
    }
    if (opts.src) {
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src', 'cli.ts'), "const who: string = 'src';\nprocess.stdout.write(who + ' ' + process.argv.slice(2).join(' '));\n");
    }
    if (opts.tsx) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    return dir;
  }
  const age = (file: string, secondsAgo: number): void => {
    const t = new Date(Date.now() - secondsAgo * 1000);
    utimesSync(file, t, t);
  };
  const launch = (dir: string): { out: string; err: string; code: number | null } => {
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'refract.js'), 'validate', 'x.yaml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    return { out: r.stdout, err: r.stderr, code: r.status };
  };

  it('runs dist/cli.js when there are no sources (the installed package), with the arguments', () => {
    const dir = layout({ dist: true, src: false, tsx: false });
    try {
      assert.deepEqual(launch(dir), { out: 'dist validate x.yaml', err: '', code: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('in a checkout: dist/ when it is newer than every file under src/, else src/ through tsx', () => {
    const dir = layout({ dist: true, src: true, tsx: true });
    try {
      age(join(dir, 'src', 'cli.ts'), 60);
      assert.equal(launch(dir).out, 'dist validate x.yaml', 'a fresh build runs');
      age(join(dir, 'dist', 'cli.js'), 120);
      assert.equal(launch(dir).out, 'src validate x.yaml', 'a build older than an edit does not');
      rmSync(join(dir, 'dist'), { recursive: true });
      assert.equal(launch(dir).out, 'src validate x.yaml', 'no build: the sources');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says what to do when neither a build nor tsx is there', () => {
    const dir = layout({ dist: false, src: true, tsx: false });
    try {
      const r = launch(dir);
      assert.equal(r.code, 1);
      assert.match(r.err, /npm install/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
