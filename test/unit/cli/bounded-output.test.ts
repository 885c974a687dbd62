/**
 * BoundedLineWriter's `coalesce` (the access log on stdout): lines written in one turn of the event loop reach the
 * stream in one write at its end, the bound counts held lines, and what is held is written when the process exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BoundedLineWriter, HOLD_BYTES } from '../../../src/cli/bounded-output.ts';

/** A stream that records each write and takes nothing until `release` (highWaterMark 1: any held byte is "full"). */
function recorder(): { stream: Writable; writes: string[] } {
  const writes: string[] = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string, _enc, cb) {
      writes.push(chunk);
      cb();
    },
  });
  return { stream, writes };
}

test('coalesce: the lines of one turn go out in one write, after the turn', async () => {
  const { stream, writes } = recorder();
  const w = new BoundedLineWriter('stdout', stream, 1 << 20, () => undefined, { coalesce: true });
  for (let i = 0; i < 5; i++) assert.equal(w.write(`line ${i}\n`), true);
  assert.deepEqual(writes, [], 'nothing written inside the turn');
  assert.equal(w.bufferedBytes, 35);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes, ['line 0\nline 1\nline 2\nline 3\nline 4\n']);
  assert.equal(w.written, 5);
  w.write('next\n');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes.at(-1), 'next\n');
});

test('coalesce: held lines count toward the bound; past it lines are dropped and counted', async () => {
  const writes: string[] = [];
  let release: (() => void) | undefined;
  // Takes the first write and then holds its callback: the stream stays full.
  const stream = new Writable({
    decodeStrings: false,
    highWaterMark: 16,
    write(chunk: string, _enc, cb) {
      writes.push(chunk);
      release = cb;
    },
  });
  const w = new BoundedLineWriter('stdout', stream, 64, () => undefined, { coalesce: true });
  let kept = 0;
  for (let i = 0; i < 20; i++) if (w.write(`0123456789\n`)) kept++;
  // 64 bytes hold 5 lines of 11 (55 < 64); the 6th reaches the bound: the held lines go to the stream, which is
  // then full, so every later line is dropped.
  assert.equal(kept, 6);
  assert.equal(w.dropped, 14);
  assert.ok(w.bufferedBytes <= 64 + 11, `at most the bound plus one line (${w.bufferedBytes})`);
  release?.();
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.join('').length, 66);
});

test('coalesce: lines still held when the process exits are written', () => {
  const mod = fileURLToPath(new URL('../../../src/cli/bounded-output.ts', import.meta.url));
  const code = `const { BoundedLineWriter } = await import(${JSON.stringify(mod)});
    const w = new BoundedLineWriter('stdout', process.stdout, 1 << 20, () => undefined, { coalesce: true });
    for (let i = 0; i < 3; i++) w.write('exit line ' + i + '\\n');
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'exit line 0\nexit line 1\nexit line 2\n');
});

test('coalesce with maxWriteBytes: no write is larger than the limit; a longer line goes alone', async () => {
  const { stream, writes } = recorder();
  const w = new BoundedLineWriter('stdout', stream, 1 << 20, () => undefined, { coalesce: true, maxWriteBytes: 100 });
  const line = 'x'.repeat(29) + '\n'; // 30 bytes: three fit in 100, a fourth does not
  for (let i = 0; i < 7; i++) w.write(line);
  w.write('y'.repeat(149) + '\n');
  w.write('é\n'); // 3 bytes in UTF-8, 2 characters
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    writes.map((x) => Buffer.byteLength(x)),
    [90, 90, 30, 150, 3],
  );
  assert.equal(writes.join(''), line.repeat(7) + 'y'.repeat(149) + '\n' + 'é\n');
});

test('holdMs: lines of several turns go out in one write once the hold time has passed', async () => {
  const { stream, writes } = recorder();
  const w = new BoundedLineWriter('stdout', stream, 1 << 20, () => undefined, { coalesce: true, holdMs: 50 });
  w.write('a\n');
  await new Promise((r) => setImmediate(r));
  w.write('b\n');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes, [], 'held across turns');
  assert.equal(w.bufferedBytes, 4);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(writes, ['a\nb\n'], 'one write after the hold');
  w.write('c\n');
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(writes, ['a\nb\n', 'c\n'], 'a new batch, a new timer');
});

test('holdMs: a batch that reaches HOLD_BYTES (or maxWriteBytes) goes out at once, before the timer', async () => {
  const { stream, writes } = recorder();
  const w = new BoundedLineWriter('stdout', stream, 1 << 20, () => undefined, { coalesce: true, holdMs: 60_000 });
  const line = 'x'.repeat(1023) + '\n';
  for (let i = 0; i < HOLD_BYTES / 1024 + 1; i++) w.write(line);
  assert.equal(writes.length, 1, 'the first 64 KiB went out without waiting a minute');
  assert.equal(Buffer.byteLength(writes[0]!), HOLD_BYTES);
  w.flush(); // the last line, and the minute-long timer cleared (the test would otherwise wait for nothing)
  assert.deepEqual(writes.map((x) => x.length), [HOLD_BYTES, 1024]);
  const small = new BoundedLineWriter('stdout', stream, 1 << 20, () => undefined, { coalesce: true, holdMs: 60_000, maxWriteBytes: 100 });
  for (let i = 0; i < 4; i++) small.write('y'.repeat(29) + '\n');
  assert.deepEqual(writes.slice(2).map((x) => x.length), [90]);
  small.flush();
  assert.deepEqual(writes.slice(2).map((x) => x.length), [90, 30]);
});

test('holdMs: held lines are written when the process exits, and the timer does not keep it alive', () => {
  const mod = fileURLToPath(new URL('../../../src/cli/bounded-output.ts', import.meta.url));
  // No process.exit: the process ends by itself with the lines held and a 60 s hold timer pending.
  const code = `const { BoundedLineWriter } = await import(${JSON.stringify(mod)});
    const w = new BoundedLineWriter('stdout', process.stdout, 1 << 20, () => undefined, { coalesce: true, holdMs: 60000 });
    for (let i = 0; i < 3; i++) w.write('held ' + i + '\\n');`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'held 0\nheld 1\nheld 2\n');
  assert.ok(Date.now() - t0 < 30_000, 'ended without waiting for the hold timer');
});
