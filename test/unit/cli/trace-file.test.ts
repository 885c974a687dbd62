import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Subject } from 'rxjs';
import { openTraceFile } from '../../../src/cli/trace-file.ts';
import { parseTrace, type TraceRecord } from '../../../src/streams/trace.ts';

const record = (conn: number, event: TraceRecord['event']): TraceRecord => ({ t: conn, node: 'n', app: 'a', conn, event }) as TraceRecord;

test('openTraceFile appends every record as a JSON line, and close() resolves once they are on disk', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'refract-trace-')), 't.jsonl');
  const records = new Subject<TraceRecord>();
  const t = openTraceFile(records, file, pino({ level: 'silent' }));
  for (let i = 1; i <= 3; i++) records.next(record(i, 'accept'));
  await t.close();
  records.next(record(4, 'accept')); // after close: not written, no error
  const { records: read, errors } = parseTrace(readFileSync(file, 'utf8'));
  assert.deepEqual(errors, []);
  assert.deepEqual(read.map((r) => r.conn), [1, 2, 3]);
});

test('openTraceFile: a file that cannot be opened is logged (trace.write_failed), records are dropped, close() resolves', async () => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const records = new Subject<TraceRecord>();
  const t = openTraceFile(records, join(mkdtempSync(join(tmpdir(), 'refract-trace-')), 'no-such-dir', 't.jsonl'), log);
  records.next(record(1, 'accept'));
  await t.close();
  records.next(record(2, 'accept'));
  const failed = lines.map((l) => JSON.parse(l) as { event?: string; err?: { code?: string } }).filter((o) => o.event === 'trace.write_failed');
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.err?.code, 'ENOENT');
});
