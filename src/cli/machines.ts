/**
 * `refract machines`: the engine's state machines drawn from their XState definitions (src/machines/diagram.ts), as
 * Markdown-ready Mermaid blocks; `--write FILE` rewrites the blocks embedded in FILE (`npm run docs:machines` does
 * it for docs/architecture.md, and test/unit/machines/diagram.test.ts fails when they are stale).
 *
 * A block is delimited by marker comments that name the machine, so it can be pasted or embedded as printed:
 *
 *     <!-- machine:tcpConnection -->
 *     ```mermaid
 *     stateDiagram-v2
 *     …
 *     ```
 *     <!-- /machine:tcpConnection -->
 *
 * Exit codes: 0 done; 1 FILE could not be read or written, or holds no block for a machine asked for; 2 bad command
 * line.
 */
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AnyStateMachine } from 'xstate';
import { toMermaid } from '../machines/diagram.ts';
import { flagProblem } from './args.ts';
import { MACHINES } from '../machines/registry.ts';

/** The machines the engine runs, by XState id, in the order they are printed (src/machines/registry.ts). */
export { MACHINES };

export const MACHINES_USAGE = `Usage: refract machines [--machine NAME] [--write FILE]
  Print the engine's state machines as Mermaid state diagrams generated from their XState definitions, each as a
  \`\`\`mermaid block between <!-- machine:NAME --> and <!-- /machine:NAME --> markers.
  --machine NAME   only this machine (${Object.keys(MACHINES).join(', ')})
  --write FILE     rewrite the marked blocks in FILE instead of printing (npm run docs:machines: docs/architecture.md)`;

const open = (name: string): string => `<!-- machine:${name} -->`;
const close = (name: string): string => `<!-- /machine:${name} -->`;

/** The fenced Mermaid block of one machine, without markers, ending with a newline. */
export function mermaidBlock(machine: AnyStateMachine): string {
  return '```mermaid\n' + toMermaid(machine) + '```\n';
}

/** The block as printed and embedded: markers, fence, diagram. */
export function markedBlock(name: string): string {
  const m = MACHINES[name];
  if (!m) throw new Error(`no machine named ${name}`);
  return `${open(name)}\n${mermaidBlock(m)}${close(name)}`;
}

/** What stands between the markers of `name` in `text` (undefined: no such markers). */
export function embeddedBlock(text: string, name: string): string | undefined {
  const a = text.indexOf(open(name));
  if (a < 0) return undefined;
  const b = text.indexOf(close(name), a);
  if (b < 0) return undefined;
  return text.slice(a, b + close(name).length);
}

/** `text` with the marked block of each of `names` replaced by the current one; `missing`: names without markers. */
export function rewriteBlocks(text: string, names: readonly string[]): { text: string; missing: string[] } {
  let out = text;
  const missing: string[] = [];
  for (const name of names) {
    const old = embeddedBlock(out, name);
    if (old === undefined) missing.push(name);
    else out = out.replace(old, () => markedBlock(name));
  }
  return { text: out, missing };
}

/** Where the command writes (tests pass their own). */
export interface MachinesIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: MachinesIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const MACHINES_OPTIONS = { machine: { type: 'string', short: 'm' }, write: { type: 'string', short: 'w' }, help: { type: 'boolean', short: 'h' } } as const;

/** Runs `refract machines ARGS`; resolves with the exit code. */
export function machinesCommand(argv: readonly string[], io: MachinesIo = processIo): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      options: MACHINES_OPTIONS,
    });
  } catch (e) {
    io.err(`refract machines: ${flagProblem(e, MACHINES_OPTIONS)}\n\n${MACHINES_USAGE}\n`);
    return 2;
  }
  const { values } = parsed;
  if (values.help) {
    io.out(MACHINES_USAGE + '\n');
    return 0;
  }
  if (values.machine !== undefined && !Object.hasOwn(MACHINES, values.machine)) {
    io.err(`refract machines: no machine named '${values.machine}' (${Object.keys(MACHINES).join(', ')})\n`);
    return 2;
  }
  const names = values.machine !== undefined ? [values.machine] : Object.keys(MACHINES);
  if (values.write === undefined) {
    io.out(names.map(markedBlock).join('\n\n') + '\n');
    return 0;
  }
  const file = values.write;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    io.err(`refract machines: cannot read ${file}: ${(e as Error).message}\n`);
    return 1;
  }
  const r = rewriteBlocks(text, names);
  if (r.missing.length > 0) {
    io.err(`refract machines: ${file} has no ${r.missing.map((n) => `${open(n)} … ${close(n)}`).join(', ')} block to rewrite\n`);
    return 1;
  }
  if (r.text !== text) {
    try {
      writeFileSync(file, r.text);
    } catch (e) {
      io.err(`refract machines: cannot write ${file}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  io.err(`refract machines: ${file}: ${names.join(', ')} ${r.text === text ? 'already up to date' : 'rewritten'}\n`);
  return 0;
}
