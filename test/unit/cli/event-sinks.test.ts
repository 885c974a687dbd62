/**
 * Event sinks: the NDJSON push's batching, retry and bounds under a manual clock, the same against a real HTTP
 * receiver on 127.0.0.1:0 (5xx then success loses nothing and keeps order; gzip), and size rotation of the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { NdjsonPush, type PushNotice } from '../../../src/streams/event-push.ts';
import { fetchTransport, openEventFile, openEventSinks } from '../../../src/cli/event-sinks.ts';
import { EventLog } from '../../../src/streams/events.ts';
import { nodeClock } from '../../../src/net/node/network.ts';
import { createManualClock } from '../../helpers/manual-clock.ts';
import { pino } from 'pino';
import type { EventsHttpSink } from '../../../src/model/types.ts';

const SETTINGS = { batchSize: 3, batchIntervalMs: 1000, bufferEvents: 10, retryInitialMs: 100, retryMaxMs: 400 };
const flushPromises = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

test('batches by count and by interval, one POST at a time, in order', async () => {
  const clock = createManualClock();
  const bodies: string[] = [];
  const push = new NdjsonPush(SETTINGS, clock, async (b) => (bodies.push(b), 200));
  for (const n of [1, 2, 3, 4]) push.push(`{"n":${n}}`);
  await flushPromises();
  assert.deepEqual(bodies, ['{"n":1}\n{"n":2}\n{"n":3}\n'], 'a full batch leaves at once');
  clock.advance(999);
  await flushPromises();
  assert.equal(bodies.length, 1, 'a partial batch waits for its interval');
  clock.advance(1);
  await flushPromises();
  assert.deepEqual(bodies.slice(1), ['{"n":4}\n']);
  assert.equal(push.delivered, 4);
  assert.equal(push.buffered, 0);
  assert.equal(clock.pending, 0);
});

test('5xx and network errors retry the same batch with doubling backoff; 4xx drops it; 429 retries', async () => {
  const clock = createManualClock();
  const answers: Array<number | Error> = [503, new Error('ECONNRESET'), 500, 500, 200, 400, 429, 200];
  const bodies: string[] = [];
  const notices: PushNotice[] = [];
  const push = new NdjsonPush(SETTINGS, clock, async (b) => {
    bodies.push(b);
    const a = answers.shift()!;
    if (a instanceof Error) throw a;
    return a;
  }, (n) => notices.push(n));
  for (const n of [1, 2, 3]) push.push(`${n}`);
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    await flushPromises();
    const r = notices.at(-1);
    assert.equal(r?.kind, 'retry');
    delays.push((r as { delayMs: number }).delayMs);
    clock.advance((r as { delayMs: number }).delayMs);
  }
  await flushPromises();
  assert.deepEqual(delays, [100, 200, 400, 400], 'doubling, capped at retry max');
  assert.equal(push.delivered, 3);
  assert.ok(bodies.every((b) => b === '1\n2\n3\n'), 'the same batch each time');
  for (const n of [4, 5, 6]) push.push(`${n}`);
  await flushPromises();
  assert.equal(push.dropped, 3, 'a 400 drops the batch');
  assert.equal(notices.at(-1)?.kind, 'dropped');
  for (const n of [7, 8, 9]) push.push(`${n}`);
  await flushPromises();
  clock.advance(100);
  await flushPromises();
  assert.equal(push.delivered, 6, '429 is retried');
  assert.equal(push.retries, 5);
});

test('a full buffer drops and counts; flush delivers the rest and stops at its deadline', async () => {
  const clock = createManualClock();
  let up = false;
  const got: string[] = [];
  const push = new NdjsonPush(SETTINGS, clock, async (b) => {
    if (!up) return 503;
    got.push(...b.trim().split('\n'));
    return 200;
  });
  for (let n = 0; n < 15; n++) push.push(String(n));
  await flushPromises();
  assert.equal(push.buffered, 10);
  assert.equal(push.dropped, 5);
  up = true;
  const flushed = push.flush(5_000);
  for (let i = 0; i < 10; i++) {
    clock.advance(400);
    await flushPromises();
  }
  await flushed;
  assert.deepEqual(got, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], 'the held events, in order, without waiting for intervals');
  push.push('late');
  assert.equal(push.dropped, 6, 'after flush, events are dropped');

  const stuck = new NdjsonPush(SETTINGS, clock, async () => 503);
  for (let n = 0; n < 4; n++) stuck.push(String(n));
  const f = stuck.flush(1_000);
  for (let i = 0; i < 5; i++) {
    clock.advance(400);
    await flushPromises();
  }
  await f;
  assert.equal(stuck.dropped, 4, 'what is left at the deadline is counted as dropped');
  assert.equal(clock.pending, 0, 'no timer left');
});

async function receiver(answers: number[]): Promise<{ url: string; batches: Array<{ headers: IncomingMessage['headers']; lines: string[] }>; close(): Promise<void> }> {
  const batches: Array<{ headers: IncomingMessage['headers']; lines: string[] }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      if (status === 200) {
        const raw = Buffer.concat(chunks);
        const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
        batches.push({ headers: req.headers, lines: text.trim().split('\n') });
      }
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
    batches,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function httpSettings(url: string, over: Partial<EventsHttpSink> = {}): EventsHttpSink {
  return { url, headers: { authorization: 'Bearer t' }, batchSize: 4, batchIntervalMs: 20, bufferEvents: 1000, gzip: false, retryInitialMs: 10, retryMaxMs: 40, timeoutMs: 2000, shutdownDeadlineMs: 3000, ...over };
}

test('a real receiver: 5xx then success loses nothing and keeps order; gzip and NDJSON headers', async () => {
  for (const gz of [false, true]) {
    const r = await receiver([500, 502]);
    const events = new EventLog();
    const sinks = openEventSinks(events, { target: undefined, http: httpSettings(r.url, { gzip: gz }) }, { clock: nodeClock, log: pino({ level: 'silent' }) });
    try {
      for (let n = 0; n < 10; n++) events.emit({ Event: 'connect', ConnectionID: String(n) } as never);
      await sinks.close();
      const lines = r.batches.flatMap((b) => b.lines.map((l) => (JSON.parse(l) as { ConnectionID: string }).ConnectionID));
      assert.deepEqual(lines, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      assert.ok(r.batches.every((b) => b.lines.length <= 4));
      assert.equal(r.batches[0]!.headers['content-type'], 'application/x-ndjson');
      assert.equal(r.batches[0]!.headers['authorization'], 'Bearer t');
      assert.equal(r.batches[0]!.headers['content-encoding'], gz ? 'gzip' : undefined);
      assert.equal(sinks.http!.retries, 2);
      assert.equal(sinks.http!.dropped, 0);
    } finally {
      await r.close();
    }
  }
});

test('the transport rejects on a refused connection (a network error, retried by the sink)', async () => {
  const r = await receiver([]);
  const url = r.url;
  await r.close();
  await assert.rejects(fetchTransport(httpSettings(url))('x\n'));
});

test('log.events.rotate renames the file to FILE.1 … FILE.keep as it reaches the size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-rotate-'));
  try {
    const file = join(dir, 'events.ndjson');
    const out = openEventFile(file, { size: '1K', sizeBytes: 1024, keep: 2 });
    const line = JSON.stringify({ pad: 'x'.repeat(200) }) + '\n';
    // Bounded: 40 lines of ~212 bytes, written one at a time so rotation can happen between them.
    for (let i = 0; i < 40; i++) if (!out.write(line)) await once(out, 'drain');
    await new Promise<void>((r) => out.end(() => r()));
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['events.ndjson', 'events.ndjson.1', 'events.ndjson.2']);
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      assert.ok(text.length <= 1024 + line.length, `${f} is bounded by the size (+ one line)`);
      for (const l of text.trim().split('\n').filter((x) => x !== '')) JSON.parse(l);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
