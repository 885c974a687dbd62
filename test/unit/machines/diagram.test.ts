/**
 * The machine diagrams (src/machines/diagram.ts): the generator on a small machine with every construct it draws,
 * the diagrams embedded in docs/architecture.md against the current definitions, and `refract machines`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup } from 'xstate';
import { toMermaid } from '../../../src/machines/diagram.ts';
import { MACHINES, embeddedBlock, machinesCommand, markedBlock } from '../../../src/cli/machines.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = join(ROOT, 'docs', 'architecture.md');

const noop = (): void => {};
const small = setup({ actions: { dial: noop, note: noop, done: noop, stop: noop }, delays: { patience: 1_000 } }).createMachine({
  id: 'small',
  initial: 'idle',
  on: { STOP: { target: '.over', actions: 'stop' }, PING: { actions: 'note' } },
  states: {
    idle: { on: { GO: 'busy' } },
    busy: {
      type: 'parallel',
      entry: 'dial',
      on: { FAIL: { target: 'busy', reenter: true }, NUDGE: { actions: 'note' } },
      states: {
        left: { initial: 'open', states: { open: { on: { L: 'shut' } }, shut: { type: 'final' } } },
        right: { initial: 'open', states: { open: { after: { patience: { target: 'shut', actions: 'note' } } }, shut: { type: 'final' } } },
      },
      after: { 500: 'over' },
    },
    over: { type: 'final', entry: 'done' },
  },
});

describe('toMermaid', () => {
  it('draws initial and final states, parallel regions, delays, re-entry, targetless and root-level transitions', () => {
    assert.equal(
      toMermaid(small),
      [
        'stateDiagram-v2',
        '  [*] --> idle',
        '  busy : entry / dial',
        '  state busy {',
        '    state "left" as busy_left',
        '    state busy_left {',
        '      [*] --> busy_left_open',
        '      state "open" as busy_left_open',
        '      state "shut" as busy_left_shut',
        '      busy_left_shut --> [*]',
        '      busy_left_open --> busy_left_shut : L',
        '    }',
        '    --',
        '    state "right" as busy_right',
        '    state busy_right {',
        '      [*] --> busy_right_open',
        '      state "open" as busy_right_open',
        '      state "shut" as busy_right_shut',
        '      busy_right_shut --> [*]',
        '      busy_right_open --> busy_right_shut : after patience / note',
        '    }',
        '  }',
        '  over : entry / done',
        '  over --> [*]',
        '  idle --> busy : GO',
        '  busy --> busy : FAIL (re-enter)',
        '  busy --> busy : NUDGE (stays) / note',
        '  busy --> over : after 500',
        '  note right of over',
        '    from any state:',
        '    STOP / stop',
        '  end note',
        '  note right of idle',
        '    from any state:',
        '    PING (stays) / note',
        '  end note',
        '',
      ].join('\n'),
    );
  });

  it('is deterministic', () => {
    assert.equal(toMermaid(small), toMermaid(small));
  });
});

describe('docs/architecture.md', () => {
  const doc = readFileSync(DOC, 'utf8');
  for (const name of Object.keys(MACHINES)) {
    it(`embeds the ${name} diagram of the current definition`, () => {
      const embedded = embeddedBlock(doc, name);
      assert.ok(embedded !== undefined, `docs/architecture.md has no <!-- machine:${name} --> … <!-- /machine:${name} --> block; add the markers and run \`npm run docs:machines\``);
      assert.equal(embedded, markedBlock(name), `docs/architecture.md's ${name} diagram differs from the machine's definition; run \`npm run docs:machines\` to redraw it`);
    });
  }
});

describe('refract machines', () => {
  const run = (...argv: string[]): { code: number; out: string; err: string } => {
    let out = '';
    let err = '';
    const code = machinesCommand(argv, { out: (t) => (out += t), err: (t) => (err += t) });
    return { code, out, err };
  };

  it('prints every machine as a marked mermaid block, or the one asked for', () => {
    const all = run();
    assert.equal(all.code, 0);
    assert.equal(all.out, `${markedBlock('tcpConnection')}\n\n${markedBlock('udpFlow')}\n`);
    const one = run('--machine', 'udpFlow');
    assert.equal(one.code, 0);
    assert.equal(one.out, `${markedBlock('udpFlow')}\n`);
    assert.match(one.out, /^<!-- machine:udpFlow -->\n```mermaid\nstateDiagram-v2\n/);
  });

  it('exits 2 on an unknown machine or option, 0 with usage on --help', () => {
    assert.equal(run('--machine', 'nope').code, 2);
    assert.equal(run('--colour').code, 2);
    const help = run('--help');
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: refract machines/);
  });

  it('--write rewrites the marked blocks of a file and leaves the rest alone; 1 when a block is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-machines-'));
    try {
      const file = join(dir, 'doc.md');
      writeFileSync(file, '# t\n\n<!-- machine:udpFlow -->\nstale\n<!-- /machine:udpFlow -->\n\ntail\n');
      assert.equal(run('--machine', 'udpFlow', '--write', file).code, 0);
      assert.equal(readFileSync(file, 'utf8'), `# t\n\n${markedBlock('udpFlow')}\n\ntail\n`);
      assert.equal(run('--machine', 'udpFlow', '--write', file).code, 0, 'idempotent');
      assert.equal(readFileSync(file, 'utf8'), `# t\n\n${markedBlock('udpFlow')}\n\ntail\n`);
      assert.equal(run('--write', file).code, 1, 'no tcpConnection block');
      assert.equal(run('--write', join(dir, 'absent.md')).code, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is dispatched by bin/refract.js: `refract machines --machine udpFlow` prints its block', async () => {
    const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'refract.js'), 'machines', '--machine', 'udpFlow'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      // A cold start compiles the CLI through tsx (seconds on a loaded 2-vCPU box).
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`refract machines did not finish in 60 s: ${stderr}`));
      }, 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `${markedBlock('udpFlow')}\n`);
  });
});
