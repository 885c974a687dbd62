/**
 * What writing analytics adds per connection, measured apart from the noise of a whole proxy run.
 *
 * A node with `api:` builds every connection's two Spectrum events whether analytics is on or off (the metrics and
 * the API's error counter subscribe to them); `analytics: { enabled: true }` adds one more subscriber, the
 * AnalyticsWriter's fold (`feedRollup` → `MinuteRollup.add`, with the app → zone lookup), and a write of the finished
 * minutes to SQLite once a minute. This harness pushes the same pre-built events (one `connect` and one `disconnect`
 * per connection, 5,000 connections per virtual minute, 10 apps) through a Subject that has the two subscribers every
 * `api:` node has, in interleaved rounds without (A) and with (B) the analytics writer's subscriber and its
 * once-a-minute write to a real AnalyticsStore (SQLite, WAL) in a temporary folder. It prints the CPU time per
 * connection of each round and the median difference: the cost of writing analytics, to set against the proxy's
 * CPU per connection from `npm run bench -- --only cps`.
 *
 * Run: taskset -c 1 node --import tsx bench/micro/analytics-fold.ts [connections per round] [rounds]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { ApiStore } from '../../src/api/store.ts';
import { AnalyticsStore, zoneOfApp } from '../../src/api/analytics-store.ts';
import { MinuteRollup, feedRollup } from '../../src/streams/analytics.ts';
import type { SpectrumEvent } from '../../src/streams/events.ts';

const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 9);
const APPS = 10;
const PER_MINUTE = 5_000;
const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);

/** One connection's two events, shaped as the engine builds them (every field the event type has). */
function eventsFor(i: number): [SpectrumEvent, SpectrumEvent] {
  const minute = Math.floor(i / PER_MINUTE);
  const at = new Date(T0 + minute * 60_000 + Math.floor(((i % PER_MINUTE) / PER_MINUTE) * 60_000)).toISOString();
  const app = `app-${i % APPS}`;
  const base = {
    Application: app,
    ApplicationName: `${app}.example.test`,
    ClientAsn: 0,
    ClientCountry: '',
    ClientIP: `192.0.2.${i % 250}`,
    ClientPort: 40_000 + (i % 20_000),
    ClientProto: 'tcp',
    ClientMatchedIpFirewall: 'UNKNOWN',
    ColoCode: 'node-1',
    OriginIP: '127.0.0.1',
    OriginPort: 7000,
    OriginProto: 'tcp',
    Timestamp: at,
    OriginTlsMode: 'off',
    ClientTlsProtocol: 'none',
    ClientTlsCipher: '',
    ClientTlsClientHelloServerName: '',
    ClientTlsStatus: 'UNKNOWN',
    OriginTlsProtocol: 'none',
    OriginTlsCipher: '',
    OriginTlsFingerprint: '',
    OriginTlsStatus: 'UNKNOWN',
    ProxyProtocol: 'off',
    IpFirewall: false,
    ConnectTimestamp: at,
    ConnectionID: `c${i}`,
    EdgeIP: '127.0.0.1',
    EdgePort: 7101,
    CloseReason: '',
  };
  const connect = { ...base, Event: 'connect', ClientBytes: 0, OriginBytes: 0, DurationMs: 0, Status: 0, DisconnectTimestamp: '' } as unknown as SpectrumEvent;
  const close = { ...base, Event: 'disconnect', ClientBytes: 64, OriginBytes: 64, DurationMs: 1 + (i % 37), Status: 200, DisconnectTimestamp: at } as unknown as SpectrumEvent;
  return [connect, close];
}

const events: SpectrumEvent[] = [];
for (let i = 0; i < N; i++) events.push(...eventsFor(i));
const config = { apps: Array.from({ length: APPS }, (_, a) => ({ id: `app-${a}`, zoneId: 'zone-1' })) };

const dir = mkdtempSync(join(tmpdir(), 'refract-fold-'));
const api = new ApiStore(join(dir, 'refract.sqlite'));
const store = new AnalyticsStore(api);

let sink = 0;
/** CPU µs per connection of one pass over the events, with or without the analytics writer. */
function pass(withAnalytics: boolean): number {
  const subject = new Subject<SpectrumEvent>();
  // The two subscribers every `api:` node has (metrics, the API's error counter): cheap, but real dispatch.
  subject.subscribe((e) => { sink += e.ClientBytes; });
  subject.subscribe((e) => { if (e.Status >= 500) sink++; });
  const rollup = new MinuteRollup();
  const sub = withAnalytics ? feedRollup(subject, rollup, zoneOfApp(() => config)) : undefined;
  const t0 = process.cpuUsage();
  for (let i = 0; i < events.length; i++) {
    subject.next(events[i]!);
    if (withAnalytics && i % (2 * PER_MINUTE) === 2 * PER_MINUTE - 1) {
      // The once-a-minute write of the minutes that ended.
      const e = events[i]!;
      if (!store.write(rollup.takeBefore(Math.floor(Date.parse(e.Timestamp) / 60_000) * 60 + 60))) throw new Error('write deferred');
    }
  }
  if (withAnalytics && !store.write(rollup.takeAll())) throw new Error('write deferred');
  const d = process.cpuUsage(t0);
  sub?.unsubscribe();
  return (d.user + d.system) / N;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
pass(false);
pass(true); // warm both paths
const off: number[] = [];
const on: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const first = r % 2 === 0;
  const a = first ? pass(false) : 0;
  const b = pass(true);
  const c = first ? 0 : pass(false);
  off.push(first ? a : c);
  on.push(b);
  console.log(`round ${r + 1}: without analytics ${off[r]!.toFixed(2)} µs/conn, with ${on[r]!.toFixed(2)} µs/conn, difference ${(on[r]! - off[r]!).toFixed(2)}`);
}
const diffs = on.map((v, i) => v - off[i]!);
console.log(
  `${N} connections (${2 * N} events) per round, ${ROUNDS} rounds: without ${median(off).toFixed(2)} µs/conn, with ${median(on).toFixed(2)} µs/conn; ` +
    `writing analytics adds ${median(diffs).toFixed(2)} µs CPU per connection (median of same-round differences; min ${Math.min(...diffs).toFixed(2)}, max ${Math.max(...diffs).toFixed(2)})`,
);
api.close();
rmSync(dir, { recursive: true, force: true });
if (sink < 0) console.log(sink);
