/**
 * `refract replay TRACE --config FILE [--seed N] [--scenario OUT] [--json]`: replays a production decision trace
 * (`refract serve --trace`) in the simulator and reports every connection whose simulated end differs from the
 * recording: status, bytes read from the client (`bytes_in`), bytes read from the origin (`bytes_out`).
 *
 * The scenario comes from `planReplay` (from-trace.ts); this file runs it and compares. Exit codes: 0 every
 * replayed connection ended as recorded; 1 at least one differs; 2 the command line, the trace or the config is
 * invalid, or the trace holds no record. docs/replay.md explains what a replay reproduces and what it cannot.
 */
import { flagProblem } from '../model/flags.ts';
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { parseConfigText } from '../model/config.ts';
import { isRefractError } from '../model/errors.ts';
import type { ConfigIssue } from '../model/types.ts';
import { parseTrace, type TraceRecord } from '../streams/trace.ts';
import { planReplay, type RecordedConn, type ReplayPlan } from './from-trace.ts';
import { runScenario, type ConnectionReport, type ScenarioReport } from './runner.ts';

const REPLAY_FLAGS = {
  config: { type: 'string', short: 'c' },
  seed: { type: 'string' },
  scenario: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const REPLAY_USAGE = `Usage: refract replay TRACE --config FILE [--seed N] [--scenario OUT] [--json]
  Replays the decision trace TRACE (from refract serve --trace) against the apps in FILE in the simulator, and
  lists every connection whose status, bytes in or bytes out differ from the recording.
  --config FILE     the config that was running when TRACE was recorded (required)
  --seed N          the simulator's seed (default 1)
  --scenario OUT    also write the replay scenario to OUT (YAML; run it again with refract sim OUT)
  --json            print the comparison as JSON
Exit: 0 every connection ended as recorded, 1 some differ, 2 invalid command line, trace or config.
Docs: docs/replay.md`;

export type ReplayField = 'status' | 'bytes_in' | 'bytes_out';

/** One connection whose simulated end is not the recorded one. */
export interface ReplayDifference {
  readonly id: string;
  readonly node: string;
  readonly conn: number;
  readonly fields: readonly ReplayField[];
  readonly recorded: { readonly status: number; readonly bytesDownstream: number | undefined; readonly bytesUpstream: number | undefined };
  /** `status` null: the simulated connection never got a closing event (refused, or still open at the end). */
  readonly simulated: { readonly status: number | null; readonly bytesDownstream: number; readonly bytesUpstream: number };
}

export interface ReplayResult {
  readonly plan: ReplayPlan;
  readonly report: ScenarioReport;
  /** Connections compared: those the recording saw close. */
  readonly compared: number;
  readonly differences: readonly ReplayDifference[];
  /** Replayed connections still open when the trace ended (not compared). */
  readonly openInRecording: readonly string[];
}

/** Compares the recorded ends of `plan` with the simulated ones of `report`, in the plan's order. */
export function compareReplay(plan: ReplayPlan, report: ScenarioReport): ReplayDifference[] {
  const sim = new Map<string, ConnectionReport>(report.connections.map((c) => [c.id, c] as const));
  const out: ReplayDifference[] = [];
  for (const r of plan.recorded) {
    if (r.status === undefined) continue;
    const c = sim.get(r.id);
    const simulated = { status: c?.status ?? null, bytesDownstream: c?.clientBytes ?? 0, bytesUpstream: c?.originBytes ?? 0 };
    const fields: ReplayField[] = [];
    if (simulated.status !== r.status) fields.push('status');
    if (r.bytesDownstream !== undefined && simulated.bytesDownstream !== r.bytesDownstream) fields.push('bytes_in');
    // A builtin origin's echo of the PROXY header is left out: its length depends on the recorded addresses.
    if (r.bytesUpstream !== undefined && simulated.bytesUpstream !== r.bytesUpstream - r.headerEchoBytes) fields.push('bytes_out');
    if (fields.length > 0) out.push({ id: r.id, node: r.node, conn: r.conn, fields, recorded: { status: r.status, bytesDownstream: r.bytesDownstream, bytesUpstream: r.bytesUpstream }, simulated });
  }
  return out;
}

/**
 * Builds the replay scenario of `records` under `config` (validated or raw), runs it, and compares.
 * @throws RefractError E_CONFIG_INVALID (raw config invalid), or the runner's E_SCENARIO_* if the built scenario is
 *   rejected (a bug in from-trace.ts: please report it with the trace).
 */
export async function replayTrace(records: readonly TraceRecord[], config: unknown, opts: { seed?: number } = {}): Promise<ReplayResult> {
  const plan = planReplay(records, config, opts.seed === undefined ? {} : { seed: opts.seed });
  const report = await runScenario(plan.scenario);
  return {
    plan,
    report,
    compared: plan.recorded.filter((r) => r.status !== undefined).length,
    differences: compareReplay(plan, report),
    openInRecording: plan.recorded.filter((r) => r.status === undefined).map((r) => r.id),
  };
}

// ── text ────────────────────────────────────────────────────────────────────────────────────────────────────────

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

const endText = (status: number | null, bytesDownstream: number | undefined, bytesUpstream: number | undefined): string =>
  `${status ?? '—'} in ${bytesDownstream ?? '?'} out ${bytesUpstream ?? '?'}`;

/** The comparison for people. Ends without a newline. */
export function formatReplay(traceFile: string, res: ReplayResult): string {
  const { plan, report } = res;
  const lines: string[] = [];
  lines.push(`replay    ${traceFile}: ${plan.recorded.length} connection${plan.recorded.length === 1 ? '' : 's'} replayed, ${plan.skipped.length} skipped`);
  lines.push(`run       seed ${report.seed}, ${(report.virtualMs / 1_000).toFixed(3)} s virtual, ${report.stoppedBy === 'idle' ? 'ran until idle' : `stopped by ${report.stoppedBy}`}`);
  if (plan.remapped.length > 0) lines.push(`addresses ${plan.remapped.map((m) => `${m.from} → ${m.to} (${m.role})`).join(', ')}`);
  for (const s of plan.skipped) lines.push(`skipped   ${s.node} conn ${s.conn}: ${s.why}`);
  const tls = plan.recorded.filter((r) => r.clientTls === 'tls').map((r) => r.id);
  const plain = plan.recorded.filter((r) => r.clientTls === 'plain').map((r) => r.id);
  if (tls.length > 0) lines.push(`tls       ${tls.join(', ')}: the client speaks TLS with the recorded version and SNI to a certificate of the simulator's CA (not verified)`);
  if (plain.length > 0) lines.push(`tls       ${plain.join(', ')}: the recorded client never completed a TLS hello; replayed without TLS`);
  for (const r of plan.recorded) {
    if (r.headerEchoBytes > 0) lines.push(`proxy     ${r.id}: bytes_out compared without the ${r.headerEchoBytes}-byte PROXY header the builtin origin echoed back`);
  }
  if (res.openInRecording.length > 0) lines.push(`not compared (open when the trace ended): ${res.openInRecording.join(', ')}`);
  lines.push('');
  if (res.differences.length === 0) {
    lines.push(`differences: none; all ${res.compared} compared connection${res.compared === 1 ? '' : 's'} ended as recorded (status, bytes in, bytes out)`);
    return lines.join('\n');
  }
  lines.push(`differences: ${res.differences.length} of ${res.compared} compared connection${res.compared === 1 ? '' : 's'}`);
  const rows = [['id', 'recorded', 'simulated', 'differs in']];
  for (const d of res.differences) {
    rows.push([d.id, endText(d.recorded.status, d.recorded.bytesDownstream, d.recorded.bytesUpstream), endText(d.simulated.status, d.simulated.bytesDownstream, d.simulated.bytesUpstream), d.fields.join(', ')]);
  }
  lines.push(table(rows).split('\n').map((l) => `  ${l}`).join('\n'));
  return lines.join('\n');
}

// ── command ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** Where the command writes; the process's streams by default (tests pass their own). */
export interface ReplayIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: ReplayIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

function formatConfigIssues(file: string, issues: readonly ConfigIssue[]): string {
  return [`${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}`, ...issues.map((i) => `  ${i.pointer || '/'}: ${i.code}: ${i.message}`)].join('\n');
}

/** Runs `refract replay` with `argv` (the words after `replay`). Resolves with the exit code; never throws for bad input. */
export async function replayCommand(argv: string[], io: ReplayIo = processIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: REPLAY_FLAGS,
    });
  } catch (e) {
    io.err(`refract replay: ${flagProblem(e, REPLAY_FLAGS)}\n\n${REPLAY_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(`${REPLAY_USAGE}\n`);
    return 0;
  }
  const traceFile = positionals[0];
  if (traceFile === undefined || positionals.length > 1 || values.config === undefined) {
    io.err(`refract replay: give one trace file and --config FILE\n\n${REPLAY_USAGE}\n`);
    return 2;
  }
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d{1,15}$/.test(values.seed)) {
      io.err(`refract replay: --seed takes a whole number from 0 to 999999999999999, got "${values.seed}"\n`);
      return 2;
    }
    seed = Number(values.seed);
  }

  let traceText: string;
  let configText: string;
  try {
    traceText = readFileSync(traceFile, 'utf8');
    configText = readFileSync(values.config, 'utf8');
  } catch (e) {
    io.err(`refract replay: ${(e as Error).message}\n`);
    return 2;
  }
  const trace = parseTrace(traceText);
  if (trace.errors.length > 0) {
    io.err(`${traceFile}: ${trace.errors.length} malformed line${trace.errors.length === 1 ? '' : 's'}\n${trace.errors.map((x) => `  ${traceFile}:${x.line}: ${x.message}`).join('\n')}\n`);
    return 2;
  }
  if (trace.records.length === 0) {
    io.err(`${traceFile}: no trace record to replay (was refract serve started with --trace?)\n`);
    return 2;
  }

  let res: ReplayResult;
  try {
    const raw = parseConfigText(configText, values.config);
    res = await replayTrace(trace.records, raw, seed === undefined ? {} : { seed });
  } catch (e) {
    if (!isRefractError(e)) throw e;
    const issues = (e.details?.['issues'] as readonly ConfigIssue[] | undefined) ?? [];
    io.err(issues.length > 0 ? `${formatConfigIssues(values.config, issues)}\n` : `refract replay: ${e.code}: ${e.message}\n`);
    return 2;
  }

  if (values.scenario !== undefined) {
    const doc = new YAML.Document(res.plan.scenario);
    doc.commentBefore = ` Built by refract replay from ${traceFile} with config ${values.config}.\n Run it again: refract sim ${values.scenario}`;
    writeFileSync(values.scenario, doc.toString({ lineWidth: 0 }));
  }
  if (values.json === true) {
    const { plan, report, compared, differences, openInRecording } = res;
    const recorded: readonly RecordedConn[] = plan.recorded;
    io.out(`${JSON.stringify({ compared, differences, openInRecording, skipped: plan.skipped, remapped: plan.remapped, recorded, report }, null, 2)}\n`);
  } else io.out(`${formatReplay(traceFile, res)}\n`);
  return res.differences.length > 0 ? 1 : 0;
}
