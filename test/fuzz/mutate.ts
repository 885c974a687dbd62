/**
 * Input damage for the fuzz targets: valid encodings with bytes (or characters) overwritten, bit-flipped, inserted,
 * deleted, duplicated, truncated or extended. A mutation is plain data (fast-check shrinks it towards fewer and
 * smaller edits), applied by a pure function, so a failing input replays from its seed and path.
 */
import { inspect } from 'node:util';
import fc from 'fast-check';

/** One edit: `kind` picks the operation, `at` and `n` are reduced modulo the input's length, `extra` is inserted text. */
export interface Edit {
  readonly kind: number;
  readonly at: number;
  readonly n: number;
  readonly extra: Uint8Array;
}

const EDIT_KINDS = 9;

/** 1 to `max` edits (0 to `max` when `allowNone`: then the valid input itself is among the cases). */
export function editsArb(max: number, allowNone = false): fc.Arbitrary<Edit[]> {
  const edit = fc.record({ kind: fc.nat(EDIT_KINDS - 1), at: fc.nat(), n: fc.nat(255), extra: fc.uint8Array({ maxLength: 24 }) });
  return fc.array(edit, { minLength: allowNone ? 0 : 1, maxLength: max });
}

/** Bytes worth trying at a position: boundaries of u8/u16 fields, NUL, CR, LF, space, the v2 signature's bytes. */
const SPECIAL_BYTES = [0x00, 0x01, 0x02, 0x0a, 0x0d, 0x20, 0x21, 0x3a, 0x2e, 0x7f, 0x80, 0xfe, 0xff];

/** Applies `edits` in order to a copy of `input`. */
export function mutateBytes(input: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(input);
  for (const e of edits) {
    const len = b.length;
    const at = len === 0 ? 0 : e.at % len;
    const atIns = e.at % (len + 1);
    switch (e.kind) {
      case 0: // overwrite one byte
        if (len > 0) b[at] = e.n;
        break;
      case 1: // flip one bit
        if (len > 0) b[at] = (b[at] ?? 0) ^ (1 << (e.n % 8));
        break;
      case 2: // overwrite with a special value
        if (len > 0) b[at] = SPECIAL_BYTES[e.n % SPECIAL_BYTES.length] ?? 0;
        break;
      case 3: // insert bytes
        b = Buffer.concat([b.subarray(0, atIns), e.extra, b.subarray(atIns)]);
        break;
      case 4: // delete 1-16 bytes
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(len, at + 1 + (e.n % 16)))]);
        break;
      case 5: // truncate
        b = b.subarray(0, atIns);
        break;
      case 6: // extend
        b = Buffer.concat([b, e.extra]);
        break;
      case 7: // duplicate a slice in place
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + e.n), b.subarray(at)]);
        break;
      default: // a 16-bit big-endian field set to a boundary value
        if (len > 1) {
          const v = [0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff, len, len + 1][e.n % 8] ?? 0;
          const i = Math.min(at, len - 2);
          b[i] = (v >> 8) & 0xff;
          b[i + 1] = v & 0xff;
        }
    }
  }
  return Uint8Array.from(b);
}

/**
 * Applies `edits` to text: characters overwritten (by any code unit, lone surrogates and controls included),
 * dictionary tokens inserted, slices deleted or duplicated, lines duplicated, the text cut or extended.
 */
export function mutateText(input: string, edits: readonly Edit[], dictionary: readonly string[]): string {
  let t = input;
  for (const e of edits) {
    const len = t.length;
    const at = len === 0 ? 0 : e.at % len;
    const atIns = e.at % (len + 1);
    const extra = Buffer.from(e.extra).toString('latin1');
    switch (e.kind) {
      case 0: // overwrite one character by a code unit (0-255 from n, plus a few outside latin1)
        if (len > 0) t = t.slice(0, at) + String.fromCharCode(e.n < 250 ? e.n : [0xd800, 0xdfff, 0xfeff, 0xfffd, 0x2028, 0x85][e.n - 250] ?? 0) + t.slice(at + 1);
        break;
      case 1: // insert a dictionary token
      case 2:
        t = t.slice(0, atIns) + (dictionary[e.n % dictionary.length] ?? '') + t.slice(atIns);
        break;
      case 3: // insert random text
        t = t.slice(0, atIns) + extra + t.slice(atIns);
        break;
      case 4: // delete 1-16 characters
        t = t.slice(0, at) + t.slice(at + 1 + (e.n % 16));
        break;
      case 5: // truncate
        t = t.slice(0, atIns);
        break;
      case 6: // extend with a token and random text
        t = t + (dictionary[e.n % dictionary.length] ?? '') + extra;
        break;
      case 7: // duplicate a slice
        t = t.slice(0, at) + t.slice(at, at + 1 + e.n) + t.slice(at);
        break;
      default: {
        // duplicate or drop a whole line
        const lines = t.split('\n');
        const i = e.at % lines.length;
        if (e.n % 2 === 0) lines.splice(i, 0, lines[i] ?? '');
        else lines.splice(i, 1);
        t = lines.join('\n');
      }
    }
  }
  return t;
}

/** Cut points for a streaming reader, as fractions of the input's length. */
export const cutsArb: fc.Arbitrary<number[]> = fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 6 });

/** `bytes` split at `cuts` (per-mille of its length); empty chunks are kept on purpose. */
export function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => Math.floor((c / 1000) * bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const k of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, k));
    prev = k;
  }
  return out;
}

/** A readable rendering of an input for a replay: hex for bytes, util.inspect otherwise. */
export function show(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes: ${Buffer.from(v).toString('hex')}`;
  return inspect(v, { depth: 8, maxArrayLength: 200, maxStringLength: 4000, breakLength: 160 });
}
