/**
 * deploy/: the container image (Dockerfile) and the systemd unit (refract.service), with the config both use
 * (deploy/refract.yaml). Structural checks always run; `systemd-analyze verify` runs where systemd-analyze is
 * installed, and `docker build` only where a Docker engine answers `docker info`; otherwise those are skipped and
 * say why. No ports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const CONFIG_IN_IMAGE = '/etc/refract/refract.yaml';

// ── Dockerfile ───────────────────────────────────────────────────────────────────────────────────────────────────

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}
interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly body: Instruction[];
}

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined, the keyword upper-cased. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i]!;
    if (/^\s*(#|$)/.test(l)) continue;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      l = l.replace(/\\\s*$/, ' ');
      i++;
      if (!/^\s*#/.test(lines[i]!)) l += lines[i]!;
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(l)!;
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ').trim(), line: start + 1 });
  }
  return out;
}

/** Stages, with `${ARG}` in FROM replaced by the global ARG's default. */
function stages(ins: readonly Instruction[]): Stage[] {
  const globals = new Map<string, string>();
  const out: Stage[] = [];
  for (const i of ins) {
    if (i.op === 'ARG' && out.length === 0) {
      const [k, v] = i.args.split('=', 2);
      if (v !== undefined) globals.set(k!, v);
    } else if (i.op === 'FROM') {
      const words = i.args.split(' ').filter((w) => !w.startsWith('--'));
      const image = words[0]!.replace(/\$\{?(\w+)\}?/g, (_, k: string) => globals.get(k) ?? `<unset ${k}>`);
      out.push({ image, name: /^as$/i.test(words[1] ?? '') ? words[2] : undefined, body: [] });
    } else out.at(-1)?.body.push(i);
  }
  return out;
}

const execForm = (args: string): unknown => JSON.parse(args) as unknown;

describe('deploy/Dockerfile', () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const ins = parseDockerfile(text);
  const st = stages(ins);
  const final = st.at(-1)!;
  const runs = (s: Stage): string => s.body.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');

  it('is multi-stage: a build stage runs `npm run build` with dev dependencies, the runtime has production ones only', () => {
    assert.ok(st.length >= 2, `stages: ${st.map((s) => s.name).join(', ')}`);
    const build = st.find((s) => /npm run build/.test(runs(s)));
    assert.ok(build, 'a stage runs npm run build');
    assert.match(runs(build), /npm ci(?![^\n]*--omit=dev)/, 'the build stage installs dev dependencies (TypeScript)');
    assert.notEqual(build, final, 'the build stage is not the runtime');
    const copies = final.body.filter((i) => i.op === 'COPY');
    const nm = copies.find((c) => /node_modules/.test(c.args));
    assert.ok(nm, 'the runtime copies node_modules from a stage');
    const from = /--from=(\S+)/.exec(nm.args)?.[1];
    const deps = st.find((s) => s.name === from);
    assert.ok(deps, `node_modules comes from stage ${String(from)}`);
    assert.match(runs(deps), /npm ci [^\n]*--omit=dev/, `stage ${String(from)} installs production dependencies only`);
    assert.ok(copies.some((c) => new RegExp(`--from=${build.name ?? '-'}\\s+\\S*dist`).test(c.args)), 'the runtime copies dist/ from the build stage');
  });

  it('pins its base images (a tag, never latest) and runs on a slim Node image', () => {
    const names = new Set(st.map((s) => s.name).filter(Boolean));
    for (const s of st) {
      if (names.has(s.image)) continue;
      const tag = /^[^@]+:([^:/@]+)$/.exec(s.image.split('@')[0]!)?.[1];
      assert.ok(tag || s.image.includes('@sha256:'), `${s.image} has a tag or digest`);
      assert.notEqual(tag, 'latest', `${s.image} is not :latest`);
    }
    assert.match(final.image, /^node:\d+[^:]*-slim$/, `runtime base ${final.image}`);
  });

  it('runs as a non-root user, may bind ports below 1024, and has a HEALTHCHECK, ENTRYPOINT refract and the serve CMD', () => {
    const user = final.body.filter((i) => i.op === 'USER').at(-1);
    assert.ok(user, 'USER is set in the runtime stage');
    assert.doesNotMatch(user.args.split(':')[0]!, /^(root|0)$/, 'USER is not root');
    assert.match(runs(final), /setcap cap_net_bind_service=\+ep/, 'node may bind ports below 1024');
    const hc = final.body.filter((i) => i.op === 'HEALTHCHECK');
    assert.equal(hc.length, 1, 'one HEALTHCHECK');
    assert.match(hc[0]!.args, /\bCMD\b/, 'the HEALTHCHECK runs a command');
    assert.match(hc[0]!.args, new RegExp(`validate ${CONFIG_IN_IMAGE.replaceAll('/', '\\/')}|"validate", "${CONFIG_IN_IMAGE}"`));
    const ep = final.body.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    assert.deepEqual(execForm(ep!.args), ['refract']);
    const cmd = final.body.filter((i) => i.op === 'CMD').at(-1);
    assert.deepEqual(execForm(cmd!.args), ['serve', '--config', CONFIG_IN_IMAGE]);
    assert.ok(!ins.some((i) => i.op === 'STOPSIGNAL' && !/SIGTERM/.test(i.args)), 'the stop signal is SIGTERM (drain, exit 0)');
  });

  it('copies files that exist, and puts the config it serves and its data volume where deploy/refract.yaml says', () => {
    for (const s of st) {
      for (const c of s.body.filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))) {
        const srcs = c.args.split(' ').filter((w) => !w.startsWith('--')).slice(0, -1);
        for (const src of srcs) assert.ok(existsSync(join(ROOT, src)), `COPY ${src} (line ${c.line}) exists in the repository`);
      }
    }
    assert.ok(final.body.some((i) => i.op === 'COPY' && i.args === `deploy/refract.yaml ${CONFIG_IN_IMAGE}`), `deploy/refract.yaml is ${CONFIG_IN_IMAGE}`);
    const dataDir = deployConfig().edge.tls.data_dir;
    const volumes = final.body.filter((i) => i.op === 'VOLUME').flatMap((i) => (i.args.startsWith('[') ? (execForm(i.args) as string[]) : i.args.split(' ')));
    assert.ok(volumes.includes(dataDir), `VOLUME ${dataDir} (edge.tls.data_dir)`);
  });

  it('builds with docker build where a Docker engine answers', { timeout: 1_200_000 }, (t) => {
    const info = spawnSync('docker', ['info'], { encoding: 'utf8', timeout: 20_000 });
    if (info.error || info.status !== 0) {
      const why = info.error ? info.error.message : (info.stderr.split('\n').find((l) => /cannot|error/i.test(l)) ?? `exit ${String(info.status)}`).trim();
      return t.skip(`no Docker engine: docker info failed (${why})`);
    }
    const tag = `refract-test:${process.pid}`;
    try {
      const b = spawnSync('docker', ['build', '-f', 'deploy/Dockerfile', '-t', tag, '.'], { cwd: ROOT, encoding: 'utf8', timeout: 900_000 });
      assert.equal(b.status, 0, `docker build failed\n${b.stderr.slice(-4000)}`);
      const v = spawnSync('docker', ['run', '--rm', tag, 'validate', CONFIG_IN_IMAGE], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(v.status, 0, `refract validate in the image\n${v.stdout}${v.stderr}`);
      const id = spawnSync('docker', ['run', '--rm', '--entrypoint', 'id', tag, '-u'], { encoding: 'utf8', timeout: 60_000 });
      assert.notEqual(id.stdout.trim(), '0', 'the image runs as a non-root user');
    } finally {
      spawnSync('docker', ['image', 'rm', '-f', tag], { timeout: 60_000 });
    }
  });
});

// ── deploy/refract.yaml ──────────────────────────────────────────────────────────────────────────────────────────

interface DeployConfig {
  edge: { drain_timeout_ms: number; tls: { data_dir: string } };
}
function deployConfig(): DeployConfig {
  return YAML.parse(readFileSync(join(DEPLOY, 'refract.yaml'), 'utf8')) as DeployConfig;
}

describe('deploy/refract.yaml', () => {
  it('is a valid config (refract validate exits 0) with an absolute data_dir', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'refract.js'), 'validate', join(DEPLOY, 'refract.yaml')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(deployConfig().edge.tls.data_dir, /^\//, 'absolute: /etc/refract is read-only to the service');
  });
});

// ── deploy/refract.service ───────────────────────────────────────────────────────────────────────────────────────

/** A unit file as section → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) {
      section = new Map();
      out.set(s[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z0-9]+)\s*=\s*(.*)$/.exec(l);
    assert.ok(kv && section, `unit line is key=value inside a section: ${l}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  }
  return out;
}

describe('deploy/refract.service', () => {
  const text = readFileSync(join(DEPLOY, 'refract.service'), 'utf8');
  const unit = parseUnit(text);
  const svc = unit.get('Service')!;
  const one = (k: string): string | undefined => svc.get(k)?.at(-1);

  it('is a simple service that serves /etc/refract/refract.yaml, reloads on SIGHUP and outlasts the drain on stop', () => {
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
    assert.equal(one('Type'), 'simple');
    assert.match(one('ExecStart')!, /^\/\S*refract serve --config \/etc\/refract\/refract\.yaml$/);
    assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
    const stopSec = Number(one('TimeoutStopSec'));
    assert.ok(stopSec * 1000 > deployConfig().edge.drain_timeout_ms, `TimeoutStopSec ${stopSec} s outlasts drain_timeout_ms`);
    assert.equal(unit.get('Install')!.get('WantedBy')?.at(-1), 'multi-user.target');
  });

  it('is hardened: no root, no new privileges, read-only system, only CAP_NET_BIND_SERVICE, a state directory for data_dir', () => {
    assert.ok(one('DynamicUser') === 'yes' || (one('User') !== undefined && one('User') !== 'root'), 'DynamicUser=yes or a User= other than root');
    for (const [k, v] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['AmbientCapabilities', 'CAP_NET_BIND_SERVICE'],
      ['CapabilityBoundingSet', 'CAP_NET_BIND_SERVICE'],
    ] as const) {
      assert.equal(one(k), v, `${k}=${v}`);
    }
    assert.notEqual(one('MemoryDenyWriteExecute'), 'yes', "V8's JIT needs W+X memory");
    const state = one('StateDirectory');
    assert.ok(state, 'StateDirectory= is set');
    assert.equal(deployConfig().edge.tls.data_dir, `/var/lib/${state}`, 'edge.tls.data_dir of deploy/refract.yaml is the StateDirectory');
  });

  it('passes systemd-analyze verify where systemd-analyze is installed', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8', timeout: 20_000 });
    if (probe.error || probe.status !== 0) return t.skip(`systemd-analyze is not installed (${probe.error?.message ?? `exit ${String(probe.status)}`}); the structural checks above still ran`);
    // verify insists that ExecStart's program exists; the installed path (/usr/local/bin/refract) need not exist
    // here, so the copy runs this checkout's bin with this node instead.
    const dir = mkdtempSync(join(tmpdir(), 'refract-unit-'));
    try {
      const copy = join(dir, 'refract.service');
      writeFileSync(copy, text.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath} ${join(ROOT, 'bin', 'refract.js')}`));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const complaints = r.stderr.split('\n').filter((l) => /unknown|ignoring|invalid|failed|not executable|deprecated/i.test(l));
      assert.deepEqual(complaints, [], 'systemd-analyze verify has no complaint');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
