/**
 * Test harness: runs an EdgeNode on real loopback sockets from a raw config object, collects its events, and
 * checks on close that nothing leaked (no open connection, no listener).
 */
import * as net from 'node:net';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { EdgeNode } from '../../src/edge/edge-node.ts';
import { createNodeNetwork } from '../../src/net/node/network.ts';
import { validateConfig } from '../../src/model/config.ts';
import type { RefractConfig } from '../../src/model/types.ts';
import type { SpectrumEvent } from '../../src/streams/events.ts';
import type { CertSource, Network } from '../../src/net/ports.ts';
import type { GeoLookup } from '../../src/core/geo.ts';

export function mustConfig(raw: unknown): RefractConfig {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(`test config invalid: ${JSON.stringify(r.issues, null, 2)}`);
  return r.config;
}

export interface EdgeUnderTest {
  edge: EdgeNode;
  net: Network;
  events: SpectrumEvent[];
  /** Resolves with the next closing event not yet returned (or the n-th closing event overall, 1-based). */
  closing(n?: number): Promise<SpectrumEvent>;
  close(): Promise<void>;
}

export async function startEdge(raw: unknown, opts: { net?: Network; geo?: GeoLookup; certs?: CertSource } = {}): Promise<EdgeUnderTest> {
  const config = mustConfig(raw);
  const n = opts.net ?? createNodeNetwork({ dnsServers: config.node.dnsServers });
  const log = pino({ level: process.env.REFRACT_TEST_LOG ?? 'silent' });
  const edge = new EdgeNode({ net: n, log, ...(opts.geo ? { geo: opts.geo } : {}), ...(opts.certs ? { certs: opts.certs } : {}) }, config);
  const events: SpectrumEvent[] = [];
  const waiters: Array<{ n: number; res: (e: SpectrumEvent) => void }> = [];
  let closings = 0;
  let consumed = 0;
  edge.events.events$.subscribe((e) => {
    events.push(e);
    if (e.Event !== 'connect') {
      closings++;
      for (const w of [...waiters]) {
        if (closings >= w.n) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res(e);
        }
      }
    }
  });
  await edge.apply(config);
  return {
    edge,
    net: n,
    events,
    closing(k?: number) {
      const target = k ?? consumed + 1;
      consumed = Math.max(consumed, target);
      const already = events.filter((e) => e.Event !== 'connect');
      if (already.length >= target) return Promise.resolve(already[target - 1]!);
      return new Promise((res) => waiters.push({ n: target, res }));
    },
    async close() {
      await edge.shutdown(50);
      assert.equal(edge.tcp.activeCount, 0, 'connections left open after shutdown');
    },
  };
}

/** A TCP origin on loopback for tests: echo by default; records what each connection received. */
export async function startOrigin(opts: { port?: number; host?: string; mode?: 'echo' | 'sink' | 'banner'; banner?: string } = {}): Promise<{
  port: number;
  received: Buffer[];
  sockets: net.Socket[];
  close(): Promise<void>;
}> {
  const received: Buffer[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    const idx = received.push(Buffer.alloc(0)) - 1;
    if (opts.mode === 'banner') s.write(opts.banner ?? '220 hello\r\n');
    s.on('data', (d) => {
      received[idx] = Buffer.concat([received[idx]!, d]);
      if (opts.mode !== 'sink') s.write(d);
    });
    s.on('end', () => s.end());
    s.on('error', () => {});
  });
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Connects, optionally writes, ends, and collects everything until the server closes. Bounded by `timeoutMs`. */
export async function exchange(port: number, data: string | Buffer | undefined, opts: { host?: string; timeoutMs?: number; end?: boolean } = {}): Promise<{ data: Buffer; error: string | undefined }> {
  const s = net.connect({ port, host: opts.host ?? '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let error: string | undefined;
  s.on('data', (d) => chunks.push(d));
  s.on('end', () => s.end()); // the server's FIN: finish our side too, as a normal client does
  s.on('error', (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message;
  });
  s.on('connect', () => {
    if (data !== undefined) s.write(data);
    if (opts.end !== false) s.end();
  });
  const timer = setTimeout(() => s.destroy(new Error('exchange timeout')), opts.timeoutMs ?? 5000);
  await new Promise<void>((res) => s.once('close', () => res())); // events.once would reject on 'error'
  clearTimeout(timer);
  return { data: Buffer.concat(chunks), error };
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
