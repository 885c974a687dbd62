/**
 * Runs the management API on loopback (port 0) over a real EdgeNode, with an in-memory store and one token.
 */
import * as net from 'node:net';
import { pino, type Logger } from 'pino';
import type { AddressInfo } from 'node:net';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { ApiStore } from '../../../src/api/store.ts';
import { AnalyticsStore, AnalyticsWriter, zoneOfApp, type AnalyticsClock } from '../../../src/api/analytics-store.ts';
import { ConfigSource } from '../../../src/api/config-source.ts';
import { createApiServer, API_PREFIX } from '../../../src/api/server.ts';
import type { BundleResult } from '../../../src/api/dashboard.ts';
import { createToken } from '../../../src/api/tokens.ts';
import { validateConfig } from '../../../src/model/config.ts';

export const ZONE = { id: '023e105f4ecef8ad9ca31a8372d0c353', name: 'example.com' };
/** A second zone, for tests that need two (pass `zones: [ZONE, ZONE2]`). */
export const ZONE2 = { id: '9a7806061c88ada191ed06f989cc3dac', name: 'example.org' };

export interface ApiUnderTest {
  base: string;
  token: string;
  edge: EdgeNode;
  store: ApiStore;
  source: ConfigSource;
  analytics: AnalyticsStore;
  writer: AnalyticsWriter;
  /** fetch relative to /client/v4 (`root`: to the server's root) with the token (unless `auth: false`); `json` is the text when the answer is not JSON. */
  call(method: string, path: string, body?: unknown, opts?: { auth?: false | string; root?: true }): Promise<{ status: number; type: string | null; json: any }>;
  close(): Promise<void>;
}

/** A port free on 127.0.0.1 now (bound on port 0 and released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startApi(fileRaw: Record<string, unknown> = {}, opts: { storeFile?: string; log?: Logger; rateLimit?: { requests: number; windowSec: number }; nowMs?: () => number; dashboard?: boolean; dashboardBundle?: () => Promise<BundleResult>; clock?: AnalyticsClock } = {}): Promise<ApiUnderTest> {
  const raw = { zones: [ZONE], ...fileRaw };
  const first = validateConfig(raw);
  if (!first.ok) throw new Error(JSON.stringify(first.issues));
  const log = pino({ level: process.env.REFRACT_TEST_LOG ?? 'silent' });
  const edge = new EdgeNode({ net: createNodeNetwork({ dnsServers: first.config.node.dnsServers }), log }, first.config);
  const store = new ApiStore(opts.storeFile ?? ':memory:');
  let tick = 0;
  // A wall clock that moves one second per reading keeps created_on orders distinct.
  const now = (): Date => new Date(Date.UTC(2026, 0, 1, 0, 0, tick++));
  const source = new ConfigSource({ edge, store, file: 'refract.yaml', fileRaw: raw, now });
  await source.start();
  // Analytics on the real wall clock (or the test's), fed from the edge's events as refract serve does.
  const clock: AnalyticsClock = opts.clock ?? {
    epochMs: () => Date.now(),
    setTimer(ms, fn) {
      const t = setTimeout(fn, ms);
      return () => clearTimeout(t);
    },
  };
  const analytics = new AnalyticsStore(store);
  const writer = new AnalyticsWriter({ store: analytics, clock, events$: edge.events.events$, zoneOf: zoneOfApp(() => source.config) });
  const server = createApiServer({
    source,
    store,
    log: opts.log,
    rateLimit: opts.rateLimit,
    nowMs: opts.nowMs ?? (() => performance.now()),
    analytics: { store: analytics, epochMs: () => clock.epochMs() },
    dashboard: opts.dashboard,
    dashboardBundle: opts.dashboardBundle,
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.server.address() as AddressInfo).port;
  const { token } = createToken(store, 'test', now());
  const base = `http://127.0.0.1:${port}${API_PREFIX}`;
  return {
    base,
    token,
    edge,
    store,
    source,
    analytics,
    writer,
    async call(method, path, body, o = {}) {
      const headers: Record<string, string> = {};
      if (o.auth !== false) headers['authorization'] = `Bearer ${o.auth ?? token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch((o.root ? base.slice(0, -API_PREFIX.length) : base) + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      const type = res.headers.get('content-type');
      return { status: res.status, type, json: text === '' ? undefined : type?.startsWith('application/json') ? JSON.parse(text) : text };
    },
    async close() {
      await server.close();
      await edge.shutdown(50);
      writer.close();
      store.close();
    },
  };
}
