/**
 * The metrics listener (`metrics.listen`): `GET /metrics` in Prometheus' text format, without authentication, as
 * scrapers expect (a real socket: the CLI owns it, as it owns the API's listener); any other request gets 404, a method other than GET or HEAD 405. Bind it to loopback (the
 * default) or a network only Prometheus reaches: config validation warns (W_METRICS_NOT_LOOPBACK) otherwise.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenErrorCode, RefractError } from '../model/errors.ts';
import type { EdgeMetrics } from '../api/metrics.ts';

export interface MetricsServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Listens on `at`; a bind failure rejects with an E_LISTEN_* RefractError (details: address, port, metrics: true). */
export async function startMetricsServer(metrics: EdgeMetrics, at: { readonly host: string; readonly port: number }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${(err as Error).message}\n`);
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval, so scrapes reuse the connection
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: at.host, port: at.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    const errno = (e as { code?: string }).code;
    throw new RefractError(listenErrorCode(errno), {
      message: `cannot listen on ${at.host}:${at.port}: ${errno ?? (e as Error).message}`,
      details: { address: at.host, port: at.port, metrics: true, cause: errno },
      cause: e,
    });
  }
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
