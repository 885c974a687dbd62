/**
 * The cost of Prometheus metrics (docs/metrics.md, "Cost"): the time of one scrape with 100 apps that each saw
 * traffic of every kind the counters split by, and the cost per connection of the event subscription (a connect
 * and a closing event through EdgeMetrics). Run: node --import tsx bench/micro/metrics-scrape.ts
 */
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { EdgeMetrics } from '../../src/api/metrics.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { validateConfig } from '../../src/model/config.ts';
import { NO_TLS_FIELDS, type SpectrumEvent } from '../../src/streams/events.ts';

const APPS = 100;
const raw = { apps: Array.from({ length: APPS }, (_, i) => ({ id: `app${i}`, protocol: `tcp/${20000 + i}`, dns: { name: `a${i}.example.test` }, origin_direct: ['tcp://127.0.0.1:1'] })) };
const r = validateConfig(raw);
if (!r.ok) throw new Error(JSON.stringify(r.issues));
const edge = new EdgeNode({ net: createNodeNetwork({}), log: pino({ level: 'silent' }) }, r.config);
await edge.apply(r.config); // binds 127.0.0.1:20000-20099: the apps must be configured, or a scrape prunes them
const metrics = new EdgeMetrics(edge);

function ev(app: number, name: SpectrumEvent['Event'], status: number, tls: boolean): SpectrumEvent {
  const t = '2026-01-01T00:00:00.000Z';
  return {
    ...NO_TLS_FIELDS,
    ...(tls ? { ClientTlsProtocol: 'TLSv1.3', ClientTlsStatus: 'OK' } : {}),
    Event: name, Timestamp: t, Application: `app${app}`, ApplicationName: `a${app}.example.test`, ClientIP: '10.0.0.1', ClientPort: 5000,
    ClientProto: 'tcp', ClientBytes: 100, OriginBytes: 200, OriginIP: '127.0.0.1', OriginPort: 1, OriginProto: 'tcp', OriginTlsMode: 'off',
    ProxyProtocol: 'off', IpFirewall: true, ClientMatchedIpFirewall: 'UNKNOWN', ClientCountry: '', ClientAsn: 0, Status: status,
    ConnectTimestamp: status === 200 ? '2026-01-01T00:00:00.003Z' : '', DisconnectTimestamp: name === 'connect' ? '' : '2026-01-01T00:00:01.000Z',
    ColoCode: 'n', ConnectionID: '1', EdgeIP: '127.0.0.1', EdgePort: 1, DurationMs: name === 'connect' ? 0 : 1000, CloseReason: name === 'connect' ? '' : 'normal', ErrorCode: '',
  } as SpectrumEvent;
}

// Every app: closes with 200, 521, 522, 499; TLS and not.
const kinds: Array<[SpectrumEvent['Event'], number, boolean]> = [['disconnect', 200, false], ['disconnect', 200, true], ['originError', 521, false], ['originError', 522, false], ['disconnect', 499, false]];
const pairs: SpectrumEvent[][] = [];
for (let a = 0; a < APPS; a++) for (const [n, s, tls] of kinds) pairs.push([ev(a, 'connect', 0, tls), ev(a, n, s, tls)]);

// Per connection: connect + close through the subscription, best of 5 rounds of 200,000.
const best = (f: () => number): number => Math.min(...Array.from({ length: 5 }, f));
const perConn = best(() => {
  const N = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const p = pairs[i % pairs.length]!;
    edge.events.emit(p[0]!);
    edge.events.emit(p[1]!);
  }
  return ((performance.now() - t0) * 1000) / N;
});
await metrics.text();
const text = await metrics.text();
const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
const scrapes: number[] = [];
for (let i = 0; i < 50; i++) {
  const t0 = performance.now();
  await metrics.text();
  scrapes.push(performance.now() - t0);
}
scrapes.sort((a, b) => a - b);
console.log(`apps ${APPS}, series ${series}, exposition ${(text.length / 1024).toFixed(0)} KiB`);
console.log(`scrape: median ${scrapes[25]!.toFixed(2)} ms, p90 ${scrapes[45]!.toFixed(2)} ms (50 scrapes)`);
console.log(`events through EdgeMetrics: ${perConn.toFixed(2)} µs per connection (connect + close), best of 5`);
metrics.dispose();
await edge.shutdown(0);
