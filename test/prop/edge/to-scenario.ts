/**
 * Generated edge cases as scenario files (src/scenario/types.ts): the form in which a shrunk counterexample is
 * saved under scenarios/regressions/ and replayed with `refract sim FILE`.
 *
 * The mapping is one to one: the world's hosts become the topology (edge `edge`, clients `client-i`, one origin
 * host `origin-k` per app whose listener behaviour is the case's origin mode), the apps go in verbatim, the edge
 * settings become the `edge:` section, certificate descriptors the `certificates:` list (a TLS origin's listener
 * gets its `tls`), and the timeline steps already have the scenario's shapes. Running the file
 * with `runScenario` gives the same decision trace as `runCase` (proxy.prop.test.ts checks it).
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import YAML from 'yaml';
import type { ConnExpectation, ScenarioFile, TimelineStep } from '../../../src/scenario/types.ts';
import { formatPortRange } from '../../../src/model/ports.ts';
import { EDGE_HOST, EDGE_IP, clientIp, clientName, originIp, originName, type EdgeCase } from './world.ts';

/** Where regressions go: `scenarios/regressions/` at the repository root, or REFRACT_REGRESSIONS_DIR (for soak runs). */
export const REGRESSIONS_DIR = process.env.REFRACT_REGRESSIONS_DIR ?? fileURLToPath(new URL('../../../scenarios/regressions/', import.meta.url));

/** The scenario file of case `c`, with optional per-connection expectations and `quiescent` (default true). */
export function toScenario(c: EdgeCase, opts: { name?: string; expect?: readonly ConnExpectation[]; quiescent?: boolean } = {}): ScenarioFile {
  const links = c.links.map((l) => ({ ...l, between: [l.between[0], l.between[1]] as [string, string] }));
  const file: ScenarioFile = {
    name: opts.name ?? `edge property case (seed ${c.seed})`,
    seed: c.seed,
    topology: {
      edges: [{ name: EDGE_HOST, addresses: [EDGE_IP] }],
      clients: Array.from({ length: c.clients }, (_, i) => ({ name: clientName(i), addresses: [clientIp(i)] })),
      origins: c.apps.map((a, k) => ({
        name: originName(k),
        addresses: [originIp(k)],
        // parse_proxy false: the echo returns every byte it reads, PROXY header included, as world.ts's does.
        listeners: [
          {
            listen: `tcp://${originIp(k)}:${formatPortRange(a.origin)}`,
            behaviour: a.mode,
            parse_proxy: false,
            ...(a.originTls !== undefined ? { tls: structuredClone(a.originTls) } : {}),
          },
        ],
      })),
      ...(links.length > 0 ? { links } : {}),
    },
    edge: { ...c.edge },
    apps: c.apps.map((a) => structuredClone(a.raw)),
    ...(c.certificates !== undefined && c.certificates.length > 0 ? { certificates: c.certificates.map((x) => structuredClone(x)) } : {}),
    timeline: c.timeline.map((s) => structuredClone(s) as TimelineStep),
    expect: { ...(opts.expect && opts.expect.length > 0 ? { connections: opts.expect.map((e) => ({ ...e })) } : {}), quiescent: opts.quiescent ?? true },
  };
  return file;
}

/** YAML text of a scenario file, with `comment` (any number of lines) as the file's top comment. */
export function scenarioYaml(file: ScenarioFile, comment?: string): string {
  const doc = new YAML.Document(file);
  if (comment !== undefined && comment !== '') doc.commentBefore = comment.split('\n').map((l) => ` ${l}`).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** `regress-<12 hex>.yaml`, from a hash of the scenario itself (so the same case always gets the same name). */
export function regressionName(file: ScenarioFile): string {
  return `regress-${createHash('sha256').update(scenarioYaml(file)).digest('hex').slice(0, 12)}.yaml`;
}

/** Writes `file` under `dir` (default scenarios/regressions/) with `comment` on top; returns the path written. */
export function writeRegression(file: ScenarioFile, comment: string, dir: string = REGRESSIONS_DIR): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, regressionName(file));
  writeFileSync(path, scenarioYaml(file, comment));
  return path;
}

/**
 * Checks `prop` (fast-check) and, when it fails, saves the shrunk counterexample as a regression scenario (built by
 * `toFile`) and throws with the report and the saved file's path. `testFile` names the property in the comment.
 */
export async function checkSavingRegression<T>(prop: fc.IAsyncPropertyWithHooks<[T]>, params: fc.Parameters<[T]>, testFile: string, toFile: (c: T) => ScenarioFile): Promise<void> {
  const details = await fc.check(prop, params);
  if (!details.failed) return;
  const report = fc.defaultReportMessage(details) ?? 'property failed';
  let saved = '(no counterexample to save)';
  if (details.counterexample !== null) {
    const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    saved = writeRegression(
      toFile(details.counterexample[0]),
      [
        `Shrunk counterexample of ${testFile}.`,
        `fast-check seed ${details.seed}, path "${details.counterexamplePath ?? ''}"`,
        `Failure: ${error.split('\n').find((l) => l.trim() !== '') ?? ''}`,
        'Replay with: refract sim <this file>',
      ].join('\n'),
    );
  }
  throw new Error(`${report}\n\nshrunk case saved as scenario ${saved} (refract sim ${saved})`);
}
