/**
 * `refract sim FILE [--seed N] [--trace out.jsonl] [--check-determinism] [--json]`: runs a scenario in virtual time.
 *
 * Exit codes: 0 every expectation held; 1 an expectation failed (a readable diff is printed) or, with
 * `--check-determinism`, two runs of the same seed gave different traces; 2 the command line or the file is invalid
 * (every problem is printed, with its line in the file).
 *
 * Output: the summary on stdout (or the report as JSON with `--json`); problems and the progress bar on stderr. The
 * progress bar appears only on a terminal, and only once a run has taken a moment, so pipes and CI logs stay clean.
 */
import { flagProblem } from '../model/flags.ts';
import { parseArgs } from 'node:util';
import { createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { configIssue } from '../model/app.ts';
import { formatFailures, formatIssues, formatSummary } from './report.ts';
import { runScenario, type ScenarioReport } from './runner.ts';
import { parseScenario } from './schema.ts';

const SIM_FLAGS = {
  seed: { type: 'string' },
  trace: { type: 'string' },
  'check-determinism': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SIM_USAGE = `Usage: refract sim FILE [--seed N] [--trace FILE] [--check-determinism] [--json]
  Runs the scenario FILE (YAML) in virtual time and checks its expectations.
  --seed N              use seed N instead of the file's
  --trace FILE          write the decision trace (JSON lines) to FILE
  --check-determinism   run twice and compare the trace hashes (exit 1 if they differ)
  --json                print the report as JSON instead of the summary
Exit: 0 expectations held, 1 an expectation failed or the runs differ, 2 invalid command line or file.
Format: docs/scenarios.md`;

/** Where the command writes: `refract sim` passes messages to the launcher's thread (src/cli/sim-worker.ts), tests their own. */
export interface SimIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal (the progress bar is drawn only then). */
  readonly tty: boolean;
  /** Wall-clock milliseconds, for throttling the progress bar. */
  now(): number;
}

/** Show the bar only for runs that last longer than this (wall ms), and redraw it at most this often. */
const PROGRESS_AFTER_MS = 300;
const PROGRESS_EVERY_MS = 100;
const BAR_WIDTH = 30;

function progressBar(io: SimIo): { onProgress: (virtualMs: number, maxMs: number) => void; clear: () => void } {
  const start = io.now();
  let last = -Infinity;
  let drawn = false;
  return {
    onProgress(virtualMs, maxMs) {
      const now = io.now();
      if (now - start < PROGRESS_AFTER_MS || now - last < PROGRESS_EVERY_MS) return;
      last = now;
      drawn = true;
      const f = Math.min(1, maxMs > 0 ? virtualMs / maxMs : 1);
      const full = Math.round(f * BAR_WIDTH);
      io.err(`\r[${'#'.repeat(full)}${'-'.repeat(BAR_WIDTH - full)}] ${(virtualMs / 1_000).toFixed(1)} s of at most ${(maxMs / 1_000).toFixed(0)} s virtual`);
    },
    clear() {
      if (drawn) io.err('\r\u001b[2K');
    },
  };
}

/** Runs `refract sim` with `argv` (the words after `sim`). Resolves with the exit code; never throws for bad input. */
export async function simCommand(argv: string[], io: SimIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: SIM_FLAGS,
    });
  } catch (e) {
    io.err(`refract sim: ${flagProblem(e, SIM_FLAGS)}\n\n${SIM_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(`${SIM_USAGE}\n`);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) {
    io.err(`refract sim: give exactly one scenario file\n\n${SIM_USAGE}\n`);
    return 2;
  }
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d{1,15}$/.test(values.seed)) {
      io.err(`refract sim: --seed takes a whole number from 0 to 999999999999999, got "${values.seed}"\n`);
      return 2;
    }
    seed = Number(values.seed);
  }

  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    io.err(formatIssues(file, [configIssue('', 'E_SCENARIO_READ', `cannot read ${file}: ${(e as Error).message}`)]) + '\n');
    return 2;
  }
  const parsedFile = parseScenario(text, file);
  if (!parsedFile.ok) {
    io.err(formatIssues(file, parsedFile.issues) + '\n');
    return 2;
  }
  const scenario = parsedFile.scenario;

  const trace = values.trace === undefined ? undefined : createWriteStream(values.trace);
  const bar = io.tty && values.json !== true ? progressBar(io) : undefined;
  let report: ScenarioReport;
  try {
    report = await runScenario(scenario, {
      wallClock: io.now,
      analytics: true,
      ...(seed === undefined ? {} : { seed }),
      ...(trace === undefined ? {} : { onTrace: (line: string) => void trace.write(line + '\n') }),
      ...(bar === undefined ? {} : { onProgress: bar.onProgress }),
    });
  } finally {
    bar?.clear();
    if (trace !== undefined) {
      trace.end();
      await once(trace, 'close').catch(() => undefined);
    }
  }

  let second: ScenarioReport | undefined;
  if (values['check-determinism'] === true) {
    const bar2 = io.tty && values.json !== true ? progressBar(io) : undefined;
    second = await runScenario(scenario, { wallClock: io.now, ...(seed === undefined ? {} : { seed }), ...(bar2 === undefined ? {} : { onProgress: bar2.onProgress }) });
    bar2?.clear();
  }
  const differs = second !== undefined && second.traceHash !== report.traceHash;

  if (values.json === true) {
    const determinism = second === undefined ? undefined : { same: !differs, hashes: [report.traceHash, second.traceHash] };
    io.out(JSON.stringify(determinism === undefined ? report : { ...report, determinism }, null, 2) + '\n');
  } else {
    io.out(formatSummary(report) + '\n');
    if (second !== undefined) {
      io.out(differs
        ? `determinism: FAILED, two runs with seed ${report.seed} gave different traces:\n  ${report.traceHash}\n  ${second.traceHash}\n`
        : `determinism: ok, two runs with seed ${report.seed} gave the same trace (${report.traceLines} lines)\n`);
    }
    if (report.failures.length > 0) io.out('\n' + formatFailures(report.failures) + '\n');
    else io.out('expectations: all held\n');
  }
  return report.failures.length > 0 || differs ? 1 : 0;
}
