/**
 * The management API of `refract serve` (docs/api.md): its database, the ConfigSource over an edge, the HTTP
 * server and the analytics writer. One process serves it over its EdgeNode (src/cli/serve.ts); `serve --workers`
 * serves it in the supervisor over the view of its workers (src/cli/workers-edge.ts).
 */
import type { Logger } from 'pino';
import type { EdgeView } from '../edge/edge-view.ts';
import { listenErrorCode, RefractError } from '../model/errors.ts';
import type { RefractConfig } from '../model/types.ts';
import type { OutputStats } from '../model/engine-view.ts';
import type { ApiStore } from '../api/store.ts';
import { ConfigSource } from '../api/config-source.ts';
import type { createApiServer } from '../api/server.ts';
import type { EdgeMetrics } from '../api/metrics.ts';
import { nodeClock } from '../net/node/network.ts';
import { apiDbPath } from './token.ts';
import { refractVersion } from './args.ts';

/** `host:port`, the host in brackets when it is IPv6. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export interface RunningApi {
  readonly source: ConfigSource;
  readonly store: ApiStore;
  /** Writes the analytics rollups; closed (open minutes written) before the store. A no-op with analytics off. */
  readonly writer: { close(): boolean };
  readonly server: ReturnType<typeof createApiServer>;
}

/**
 * The management API over `edge`: its database (created and migrated if needed), the ConfigSource that merges the
 * file with the stored apps, and the HTTP server (not listening yet). Loaded only with `api:` (SQLite's native
 * module and the HTTP server cost start-up time otherwise).
 */
export async function openApi(
  file: string,
  config: RefractConfig,
  fileRaw: unknown,
  edge: EdgeView,
  log: Logger,
  adopt: (c: RefractConfig) => void,
  metrics?: EdgeMetrics,
  outputs?: () => Readonly<Record<string, OutputStats>>,
): Promise<RunningApi> {
  const [{ ApiStore }, { createApiServer }, { AnalyticsStore, AnalyticsWriter, zoneOfApp }] = await Promise.all([
    import('../api/store.ts'),
    import('../api/server.ts'),
    import('../api/analytics-store.ts'),
  ]);
  const store = new ApiStore(apiDbPath(file, config.node.dataDir ?? '.refract'));
  const source = new ConfigSource({
    edge,
    store,
    file,
    fileRaw,
    now: () => new Date(),
    onApplied: (c, result) => {
      log.info({ event: 'config.applied', trigger: 'api', ...result }, 'API change applied');
      adopt(c);
    },
    onEdgeIpMoved: (m) =>
      m.reason === 'rotated'
        ? log.info({ event: 'edge_ips.rotated', ...m }, `${m.name}: rotated from ${m.from} to ${m.to ?? 'none'}`)
        : log.warn({ event: 'edge_ips.moved', ...m }, `${m.name}: ${m.from} is in no pool any more; now ${m.to ?? 'none'}`),
  });
  // Analytics (docs/api.md, "Analytics"): the edge's events rolled up per minute into the API's database.
  // `analytics: { enabled: false }`: no subscription to the events, no rows; the endpoints answer E_API_ANALYTICS_OFF.
  const analyticsOn = config.analytics?.enabled !== false;
  const analytics = analyticsOn ? new AnalyticsStore(store, { retentionDays: config.analytics?.retentionDays }) : undefined;
  const writer = analytics !== undefined ? new AnalyticsWriter({ store: analytics, clock: nodeClock, events$: edge.events.events$, zoneOf: zoneOfApp(() => source.config) }) : { close: () => true };
  const server = createApiServer({
    source,
    store,
    log,
    rateLimit: config.api?.rateLimit,
    nowMs: () => nodeClock.now(),
    version: refractVersion(),
    dashboard: config.api?.dashboard,
    metrics,
    outputs,
    analytics: analytics !== undefined ? { store: analytics, epochMs: () => nodeClock.epochMs() } : undefined,
  });
  return { source, store, server, writer };
}

/** Starts the API's HTTP listener; a bind failure is an E_LISTEN_* RefractError naming the address and port. */
export async function listenApi(api: RunningApi, at: { readonly host: string; readonly port: number }): Promise<void> {
  try {
    await api.server.listen({ host: at.host, port: at.port });
  } catch (e) {
    const errno = (e as { code?: string }).code;
    throw new RefractError(listenErrorCode(errno), {
      message: `cannot listen on ${hostPort(at.host, at.port)}: ${errno ?? (e as Error).message}`,
      details: { address: at.host, port: at.port, api: true },
      cause: e,
    });
  }
}
