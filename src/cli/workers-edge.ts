/**
 * The edge of `serve --workers N` as one `EdgeView` (src/edge/edge-view.ts), for the management API and the metrics
 * that the supervisor runs (docs/deploy.md, "Every core: --workers"):
 * - `apply` is the supervisor's two-phase transaction over the serving workers (all or none of them change);
 * - `events` are the workers' events merged in the supervisor (exact: every event of every worker);
 * - the live state (listeners, open connections and flows per app and state, the engines' counters, log lines
 *   suppressed, the descriptor guard's figures) is summed over the workers from the snapshots each pushes every
 *   `SNAPSHOT_EVERY_MS` and right after each change it commits: at most that old (plus the IPC hop).
 * A worker that exits leaves its counters behind (added to those of the exited workers, so totals never go down)
 * and takes its listeners and open connections with it; its replacement starts counting from 0.
 */
import type { EdgeNode } from '../edge/edge-node.ts';
import type { EdgeListener, EdgeView, EngineView, OpenInstance } from '../edge/edge-view.ts';
import type { TcpStats } from '../machines/tcp-env.ts';
import type { UdpStats } from '../machines/udp-flow.ts';
import type { ApplyResult } from '../edge/edge-node.ts';
import type { RefractConfig } from '../model/types.ts';
import type { EventLog } from '../streams/events.ts';
import type { DescriptorStats } from '../net/descriptor-guard.ts';
import type { OutputStats } from '../model/engine-view.ts';

/** How often a worker pushes its snapshot (it also pushes one right after each commit). */
export const SNAPSHOT_EVERY_MS = 1_000;

/** Open instances grouped: [app id ('' = none), state value JSON, how many]. */
type OpenGroups = Array<[string, string, number]>;

/** What a worker pushes of its edge: plain data (sent over the cluster's IPC channel). */
export interface WorkerSnapshot {
  readonly listeners: EdgeListener[];
  readonly tcp: { readonly stats: TcpStats; readonly open: OpenGroups };
  readonly udp: { readonly stats: UdpStats; readonly open: OpenGroups };
  readonly suppressed: Array<[string, number]>;
  readonly descriptors: DescriptorStats;
  /** The worker's access-log writer on stdout (each worker writes its own lines), when it has one. */
  readonly stdout?: OutputStats | undefined;
}

function groups(list: ReadonlyArray<OpenInstance>): OpenGroups {
  const m = new Map<string, [string, string, number]>();
  for (const { app, state, n = 1 } of list) {
    const key = `${app ?? ''}\u0000${state}`;
    const g = m.get(key);
    if (g !== undefined) g[2] += n;
    else m.set(key, [app ?? '', state, n]);
  }
  return [...m.values()];
}

/** A worker's snapshot of its EdgeNode now (O(open connections), as a scrape is). */
export function snapshotOf(edge: EdgeNode, descriptors: DescriptorStats, stdout?: OutputStats): WorkerSnapshot {
  return {
    stdout: stdout === undefined ? undefined : { written: stdout.written, dropped: stdout.dropped, bufferedBytes: stdout.bufferedBytes },
    listeners: edge.listeners(),
    tcp: { stats: structuredClone(edge.tcp.stats), open: groups(edge.tcp.appStates()) },
    udp: { stats: structuredClone(edge.udp.stats), open: groups(edge.udp.appStates()) },
    suppressed: [...edge.logLimit.suppressedByCause],
    descriptors: { ...descriptors },
  };
}

/** Counters that are gauges (open now): not kept from an exited worker. */
const GAUGES = new Set(['downstream_cx_active', 'udp_flows_active']);

/** `into += from`, field by field (numbers, and records of numbers one level down); gauges too unless `counters`. */
function addStats(into: Record<string, unknown>, from: Readonly<Record<string, unknown>>, counters = false): void {
  for (const [k, v] of Object.entries(from)) {
    if (typeof v === 'number') {
      if (!(counters && GAUGES.has(k))) into[k] = ((into[k] as number | undefined) ?? 0) + v;
    } else if (typeof v === 'object' && v !== null) {
      const sub = ((into[k] as Record<string, number> | undefined) ??= {});
      for (const [kk, vv] of Object.entries(v as Record<string, number>)) sub[kk] = (sub[kk] ?? 0) + vv;
    }
  }
}


interface Totals {
  tcp: TcpStats;
  udp: UdpStats;
  suppressed: Map<string, number>;
  acceptRefused: number;
  upstreamFailed: number;
  episodes: number;
  stdoutWritten: number;
  stdoutDropped: number;
}

/** No counters yet: their fields appear with the first snapshot (which every worker pushes before it serves). */
function emptyTotals(): Totals {
  return { tcp: {} as TcpStats, udp: {} as UdpStats, suppressed: new Map(), acceptRefused: 0, upstreamFailed: 0, episodes: 0, stdoutWritten: 0, stdoutDropped: 0 };
}

function addInto(t: Totals, s: WorkerSnapshot, counters: boolean): void {
  addStats(t.tcp as unknown as Record<string, unknown>, s.tcp.stats as unknown as Record<string, unknown>, counters);
  addStats(t.udp as unknown as Record<string, unknown>, s.udp.stats as unknown as Record<string, unknown>, counters);
  for (const [cause, n] of s.suppressed) t.suppressed.set(cause, (t.suppressed.get(cause) ?? 0) + n);
  t.acceptRefused += s.descriptors.acceptRefused;
  t.upstreamFailed += s.descriptors.upstreamFailed;
  t.episodes += s.descriptors.episodes;
  t.stdoutWritten += s.stdout?.written ?? 0;
  t.stdoutDropped += s.stdout?.dropped ?? 0;
}

/** A live engine view whose `stats` object keeps its identity (readers hold it) and is refilled on each snapshot. */
class SummedEngine<S extends object> implements EngineView<S> {
  readonly stats: S;
  open: OpenInstance[] = [];
  constructor(stats: S) {
    this.stats = stats;
  }
  appStates(): ReadonlyArray<OpenInstance> {
    return this.open;
  }
}

export interface WorkersEdgeDeps {
  /** The workers' events, merged by the supervisor. */
  readonly events: EventLog;
  /** The two-phase transaction over the serving workers; resolves with the new running configuration's result. */
  readonly apply: (config: RefractConfig) => Promise<ApplyResult>;
  /** The running configuration (the supervisor's). */
  readonly config: () => RefractConfig | undefined;
}

/** The workers' edge as one EdgeView; `update` and `exited` feed it (src/cli/workers.ts). */
export class WorkersEdge implements EdgeView {
  readonly events: EventLog;
  readonly tcp: SummedEngine<TcpStats>;
  readonly udp: SummedEngine<UdpStats>;
  readonly logLimit: { suppressed: number; readonly suppressedByCause: Map<string, number> } = { suppressed: 0, suppressedByCause: new Map() };
  readonly #d: WorkersEdgeDeps;
  /** The latest snapshot of each running worker, by slot. */
  readonly #live = new Map<number, WorkerSnapshot>();
  /** The counters of workers that exited (their last snapshots). */
  readonly #gone: Totals;
  #listeners: EdgeListener[] = [];
  #descriptors: DescriptorStats = { limit: Infinity, reserve: 0, acceptRefused: 0, upstreamFailed: 0, episodes: 0, paused: false };

  constructor(deps: WorkersEdgeDeps) {
    this.#d = deps;
    this.events = deps.events;
    this.tcp = new SummedEngine({} as TcpStats);
    this.udp = new SummedEngine({} as UdpStats);
    this.#gone = emptyTotals();
  }

  get config(): RefractConfig | undefined {
    return this.#d.config();
  }

  apply(config: RefractConfig): Promise<ApplyResult> {
    return this.#d.apply(config);
  }

  /** Every worker's listeners: a port bound in N workers appears N times (once per socket). */
  listeners(): ReadonlyArray<EdgeListener> {
    return this.#listeners;
  }

  /** The descriptor guards' figures: counters summed over workers, paused when any worker is, the smallest limit. */
  descriptors(): DescriptorStats {
    return this.#descriptors;
  }

  /**
   * stdout as one output: `own` (the supervisor's writer: events on stdout) plus every worker's access-log writer
   * (exited workers' last counts included; buffered bytes of the running ones).
   */
  stdout(own: OutputStats): OutputStats {
    let written = own.written + this.#gone.stdoutWritten;
    let dropped = own.dropped + this.#gone.stdoutDropped;
    let bufferedBytes = own.bufferedBytes;
    for (const s of this.#live.values()) {
      written += s.stdout?.written ?? 0;
      dropped += s.stdout?.dropped ?? 0;
      bufferedBytes += s.stdout?.bufferedBytes ?? 0;
    }
    return { written, dropped, bufferedBytes };
  }

  /** How many workers have pushed a snapshot and not exited. */
  get reporting(): number {
    return this.#live.size;
  }

  /** A worker's new snapshot. */
  update(slot: number, s: WorkerSnapshot): void {
    this.#live.set(slot, s);
    this.#sum();
  }

  /** A worker exited: its counters join the exited workers', its listeners and open instances leave. */
  exited(slot: number): void {
    const s = this.#live.get(slot);
    if (s === undefined) return;
    this.#live.delete(slot);
    addInto(this.#gone, s, true);
    this.#sum();
  }

  #sum(): void {
    const t = emptyTotals();
    addStats(t.tcp as unknown as Record<string, unknown>, this.#gone.tcp as unknown as Record<string, unknown>);
    addStats(t.udp as unknown as Record<string, unknown>, this.#gone.udp as unknown as Record<string, unknown>);
    for (const [cause, n] of this.#gone.suppressed) t.suppressed.set(cause, n);
    t.acceptRefused = this.#gone.acceptRefused;
    t.upstreamFailed = this.#gone.upstreamFailed;
    t.episodes = this.#gone.episodes;
    const listeners: EdgeListener[] = [];
    const tcpOpen: OpenInstance[] = [];
    const udpOpen: OpenInstance[] = [];
    let paused = false;
    let limit = Infinity;
    let reserve = 0;
    for (const s of this.#live.values()) {
      addInto(t, s, false);
      listeners.push(...s.listeners);
      for (const [app, state, n] of s.tcp.open) tcpOpen.push({ app: app === '' ? undefined : app, state, n });
      for (const [app, state, n] of s.udp.open) udpOpen.push({ app: app === '' ? undefined : app, state, n });
      paused ||= s.descriptors.paused;
      if (s.descriptors.limit < limit) ({ limit, reserve } = s.descriptors);
    }
    Object.assign(this.tcp.stats, t.tcp);
    Object.assign(this.udp.stats, t.udp);
    this.tcp.open = tcpOpen;
    this.udp.open = udpOpen;
    this.#listeners = listeners;
    this.logLimit.suppressedByCause.clear();
    let suppressed = 0;
    for (const [cause, n] of t.suppressed) {
      this.logLimit.suppressedByCause.set(cause, n);
      suppressed += n;
    }
    this.logLimit.suppressed = suppressed;
    this.#descriptors = { limit, reserve, acceptRefused: t.acceptRefused, upstreamFailed: t.upstreamFailed, episodes: t.episodes, paused };
  }
}
