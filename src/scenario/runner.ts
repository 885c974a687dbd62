/**
 * Runs a scenario in virtual time: one simulated world per run, the real engine (`EdgeNode`) on each edge host,
 * scripted clients and origins around it, then a report and the expectation check. The run ends when nothing is
 * left to do (idle), at `max_time_ms`, or when the step budget is spent.
 *
 * This file is the composition; each part is a module of its own (map and reading order: README.md):
 * `world.ts` (simulator, hosts, links, DNS, certificates, the run loop), `tracker.ts` (follows timeline connections
 * and flows through the edge's streams), `origins.ts`, `edges.ts` (the engine, the trace hash), `clients.ts`,
 * `timeline.ts`, `results.ts` (the report's types and lines), `expectations.ts`.
 *
 * Determinism: everything observable comes from the seed and the file. The trace hash covers the decision-trace
 * lines of every edge, in the order they were recorded; wall time appears only in `wallMs`.
 */
import { RefractError } from '../model/errors.ts';
import { Clients } from './clients.ts';
import { Edges, TraceRecorder } from './edges.ts';
import { SimAnalytics } from './analytics.ts';
import { checkAnalyticsExpectations, checkDescriptorExpectations, checkExpectations, checkFlowExpectations, checkResolutionExpectations } from './expectations.ts';
import { Origins } from './origins.ts';
import { Resolutions } from './resolutions.ts';
import { connectionReports, flowReports, resolutionReports, round3, sortedCounts, type ExpectationFailure, type ScenarioReport } from './results.ts';
import { DEFAULT_MAX_TIME_MS, validateScenario } from './schema.ts';
import { scheduleTimeline } from './timeline.ts';
import { Tracker } from './tracker.ts';
import { type ScenarioFile } from './types.ts';
import { World } from './world.ts';

export { topologyGeo } from './edges.ts';
export type { AnalyticsRow } from './analytics.ts';
export type { ApiOutcome, ConnectionReport, DescriptorCounts, ExpectationFailure, FlowReport, ResolutionReport, ScenarioReport, UdpCounters } from './results.ts';

export interface RunOptions {
  /** Overrides the file's seed. */
  readonly seed?: number;
  /** Receives each decision-trace line (JSON, no newline) as it is recorded. */
  readonly onTrace?: (line: string) => void;
  /** Called now and then with the virtual time reached and the run's bound. */
  readonly onProgress?: (virtualMs: number, maxMs: number) => void;
  /** Bound on simulator events (default 50,000,000): a runaway scenario stops with `stoppedBy: 'max_steps'`. */
  readonly maxSteps?: number;
  /**
   * Wall-clock milliseconds, from the caller's real clock, to report `wallMs`. The run itself never reads it;
   * without it `wallMs` is 0 (the simulator has no wall time of its own).
   */
  readonly wallClock?: () => number;
  /** Put the bytime table in the report (`analytics`); a scenario with `expect.analytics` has it anyway. */
  readonly analytics?: boolean;
}

const DEFAULT_MAX_STEPS = 50_000_000;

/**
 * Runs `file` (validated first: an invalid scenario throws a RefractError with the first issue's code and every
 * issue in `details.issues`). Resolves with the report; failed expectations are in `report.failures`, never thrown.
 */
export async function runScenario(file: ScenarioFile, opts: RunOptions = {}): Promise<ScenarioReport> {
  const checked = validateScenario(file);
  if (!checked.ok) {
    const first = checked.issues[0]!;
    throw new RefractError(first.code, { message: `invalid scenario: ${first.pointer || '/'}: ${first.message}`, details: { issues: checked.issues } });
  }
  const sc = checked.scenario;
  const wallStart = opts.wallClock?.() ?? 0;
  const seed = opts.seed ?? sc.seed;
  const maxMs = sc.max_time_ms ?? DEFAULT_MAX_TIME_MS;
  const failures: ExpectationFailure[] = [];
  const fail = (path: string, expected: unknown, actual: unknown): void => {
    failures.push({ path, expected, actual });
  };

  // The world, then what runs in it: origins listen before the edges start, and the timeline is set last.
  const world = new World(sc, seed);
  const tracker = new Tracker(world.topo.edges.map((e) => ({ name: e.name, addresses: world.host(e.name).addresses })));
  const trace = new TraceRecorder(opts.onTrace);
  const origins = new Origins(world, tracker);
  await origins.start();
  // The rollup runs only when the report will have the table (it is the only reader of the rollup).
  const analytics = opts.analytics === true || sc.expect?.analytics !== undefined ? new SimAnalytics() : undefined;
  const edges = new Edges(world, sc, tracker, trace, fail, analytics);
  for (const e of world.topo.edges) await edges.start(e.name, '/apps');
  const expected = new Set((sc.expect?.connections ?? []).map((x) => x.id));
  const clients = new Clients(world, tracker, sc.timeline, expected);
  const resolutions = new Resolutions(world, sc);
  scheduleTimeline(sc, { world, clients, origins, edges, resolutions, fail });

  const { steps, stoppedBy } = await world.run(maxMs, opts.maxSteps ?? DEFAULT_MAX_STEPS, opts.onProgress);

  const end = { ...world.leftovers(), stoppedBy };
  const { connections, texts } = connectionReports(tracker.connections.values(), expected);
  const { flows, received } = flowReports(tracker.flows.values());
  const udp = edges.udpCounters();
  const descriptors = world.descriptors();
  const api = edges.apiOutcomes();
  const resolved = resolutionReports(resolutions.tracks.values());
  const table = analytics?.table();
  edges.close();
  // A connection's report by id through the tracker's own index (no map of every report built for the lookups).
  const reportOf = (id: string): (typeof connections)[number] | undefined => {
    const t = tracker.connections.get(id);
    if (t === undefined) return undefined;
    const c = connections[t.index];
    return c !== undefined && c.id === id ? c : connections.find((x) => x.id === id);
  };
  checkExpectations(sc, connections, texts, tracker.byStatus, end, fail, world.certs, reportOf);
  checkFlowExpectations(sc, flows, received, udp, fail);
  checkDescriptorExpectations(sc, descriptors, fail);
  checkResolutionExpectations(sc, resolved, fail);
  if (table !== undefined) checkAnalyticsExpectations(sc, table, api, fail);
  const wallMs = opts.wallClock ? opts.wallClock() - wallStart : 0;
  return {
    name: sc.name,
    seed,
    virtualMs: round3(world.sim.clock.now()),
    wallMs: round3(wallMs),
    steps,
    stoppedBy,
    connections,
    flows,
    udp,
    ...(descriptors === undefined ? {} : { descriptors }),
    ...(api.length > 0 ? { api } : {}),
    ...(resolved.length > 0 ? { resolutions: resolved } : {}),
    ...(table === undefined ? {} : { analytics: table }),
    byStatus: sortedCounts(tracker.byStatus),
    failures,
    traceHash: trace.digest(),
    traceLines: trace.lines,
    quiescent: end.quiescent,
    leftOpen: end.quiescent ? [] : end.leftOpen,
    pendingTimers: end.pendingTimers,
  };
}
