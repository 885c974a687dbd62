/**
 * Loads geolocation data from disk for IP Access rules, and reloads it when a file changes.
 *
 * Each file is one source: `*.mmdb` is read with the `maxmind` package (MaxMind GeoLite2/GeoIP2 and the
 * ip-location-db `-mmdb` packages), anything else as CSV (`src/core/geo.ts`: `start,end,country` or
 * `start,end,asn,org`). Sources of one kind are asked in the order given; the first that knows an address answers.
 *
 * Reload: each file is watched through `watchFileChanges` (its directory, not its inode, so renames over it are
 * seen; and its symlink chain, so Kubernetes' ConfigMap swaps are seen every time), changes are debounced, and the
 * file is read and parsed again in full. A file that fails to load keeps its previous data and reports `geo.rejected`; lookups never
 * see a half-loaded file, because a source is swapped only once its replacement is complete. `reload()` does the
 * same for every file at once (for SIGHUP).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileIdentity, watchFileChanges, type FileWatch } from './file-watch.ts';
import { open as openMmdb, type Reader, type Response } from 'maxmind';
import { isV4MappedWords, parseIpWords } from '../../model/ip.ts';
import {
  asnCsvParser,
  combineGeo,
  countryCsvParser,
  RangeTable,
  type AsnInfo,
  type GeoCsvParser,
  type GeoLookup,
  type GeoParseResult,
  type GeoTableStats,
  type RangeSource,
} from '../../core/geo.ts';
import { RefractError } from '../../model/errors.ts';
import { startWorker } from './worker.ts';

export interface GeoFiles {
  /** Country data, asked in order: `*.mmdb`, or CSV `start,end,country`. */
  readonly country?: readonly string[];
  /** ASN data, asked in order: `*.mmdb`, or CSV `start,end,asn,org`. */
  readonly asn?: readonly string[];
}

export type GeoKind = 'country' | 'asn';

export type GeoLoadEvent =
  | {
      readonly event: 'geo.loaded';
      readonly kind: GeoKind;
      readonly file: string;
      readonly format: 'csv' | 'mmdb';
      /** CSV: ranges loaded (both families). Absent for MMDB. */
      readonly ranges?: number;
      /** CSV: ranges inside another range, ranges overlapping one partly, and the disjoint segments looked up (`GeoTableStats`). */
      readonly nested?: number;
      readonly partial?: number;
      readonly segments?: number;
      /** Time to read and parse, ms. */
      readonly ms: number;
    }
  | { readonly event: 'geo.rejected'; readonly kind: GeoKind; readonly file: string; readonly error: RefractError }
  /** The file's directory cannot be watched (`error`: fs.watch's, e.g. ENOSPC): changes are seen by a 2 s stat poll. */
  | { readonly event: 'geo.polling'; readonly kind: GeoKind; readonly file: string; readonly error: unknown };

export interface GeoLoaderOptions {
  /** Watch the files and reload on change. Default true. */
  readonly watch?: boolean;
  /** Quiet time after the last change before a file is read again, ms. Default 200. */
  readonly debounceMs?: number;
  /** Every load and every rejected reload (log them: `geo.rejected` means lookups run on the previous data). */
  readonly onEvent?: (e: GeoLoadEvent) => void;
  /** Largest file read, bytes (default GEO_MAX_BYTES); a larger one is refused with E_GEO_TOO_LARGE unread. */
  readonly maxBytes?: number;
  /** Read and parse CSV files in a worker thread (default true), so a reload never stalls connections. */
  readonly worker?: boolean;
}

/** The default size limit of one geolocation file: 256 MiB (the largest ip-location-db CSV is under 30 MB). */
export const GEO_MAX_BYTES = 256 * 1024 * 1024;

/** A GeoLookup over files, kept current. */
export interface LoadedGeo extends GeoLookup {
  /** Reads every file again now; a file that fails keeps its previous data (and reports `geo.rejected`). */
  reload(): Promise<void>;
  /** Stops watching. Lookups keep answering from the data last loaded. Idempotent. */
  close(): void;
}

interface Slot {
  readonly kind: GeoKind;
  readonly file: string;
  source: RangeSource<string> | RangeSource<AsnInfo>;
  /** Reloads of one file run one at a time; a change during a reload queues exactly one more. */
  running: Promise<void> | undefined;
  again: boolean;
}

const READ_ERRORS = new Set(['ENOENT', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'ELOOP', 'EMFILE', 'ENFILE', 'EIO']);

function readError(file: string, cause: unknown): RefractError {
  const code = (cause as { code?: unknown } | null)?.code;
  return new RefractError('E_GEO_READ', { message: `${file}: ${String((cause as Error | null)?.message ?? cause)}`, details: { file, code }, cause });
}

function isReadError(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === 'string' && READ_ERRORS.has(code);
}

/** IPv6 or IPv4 from the file name (`asn-ipv6-num.csv`), for integer-address CSV. */
function numericFamily(file: string): 'IPv4' | 'IPv6' | undefined {
  const name = basename(file).toLowerCase();
  if (name.includes('ipv6')) return 'IPv6';
  if (name.includes('ipv4')) return 'IPv4';
  return undefined;
}

/** Characters parsed between yields to the event loop (~1 MiB: tens of milliseconds), so a reload never stalls connections long. */
const PIECE_CHARS = 1 << 20;

async function parsePieces<V>(parser: GeoCsvParser<V>, text: string): Promise<GeoParseResult<RangeTable<V>>> {
  for (let from = 0; from < text.length; ) {
    const nl = text.indexOf('\n', Math.min(text.length, from + PIECE_CHARS));
    const to = nl === -1 ? text.length : nl + 1;
    const failed = parser.feed(text, from, to);
    if (failed !== undefined) return failed;
    from = to;
    if (from < text.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return parser.finish();
}

/** E_GEO_TOO_LARGE unless `file` is at most `maxBytes` (checked before reading it). */
async function checkSize(file: string, maxBytes: number): Promise<void> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (cause) {
    throw readError(file, cause);
  }
  if (size > maxBytes) {
    throw new RefractError('E_GEO_TOO_LARGE', { message: `${file}: ${size} bytes, over the limit of ${maxBytes} bytes; not read`, details: { file, size, maxBytes } });
  }
}

/** Reads and parses a CSV file on this thread, in pieces (the worker runs this; so does `worker: false`). */
export async function loadCsv(kind: GeoKind, file: string, maxBytes = GEO_MAX_BYTES): Promise<{ source: RangeTable<string> | RangeTable<AsnInfo>; stats: GeoTableStats }> {
  await checkSize(file, maxBytes);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw readError(file, cause);
  }
  const opts = { source: file, numericFamily: numericFamily(file) };
  const r: GeoParseResult<RangeTable<string> | RangeTable<AsnInfo>> =
    kind === 'country' ? await parsePieces(countryCsvParser(opts), text) : await parsePieces(asnCsvParser(opts), text);
  if (!r.ok) throw new RefractError('E_GEO_FORMAT', { message: r.message, details: { file, line: r.line } });
  return { source: r.value, stats: r.value.stats };
}

/** Address text as an MMDB reader should get it: IPv4-mapped IPv6 as IPv4, no zone; undefined if not an address. */
const ADDR = new Uint32Array(4);
function mmdbAddress(ip: string, v6Database: boolean): string | undefined {
  const fam = parseIpWords(ip, ADDR);
  if (fam === 4) return ip;
  if (fam !== 6) return undefined;
  if (isV4MappedWords(ADDR)) {
    const x = ADDR[3] ?? 0;
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  }
  // An IPv4-only database would walk its 32-bit tree with the IPv6 bits and answer nonsense.
  if (!v6Database) return undefined;
  const zone = ip.indexOf('%');
  return zone === -1 ? ip : ip.slice(0, zone);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Country of an MMDB record: GeoIP2 `country.iso_code`, else `registered_country.iso_code`, else ip-location-db `country_code`. */
export function mmdbCountry(rec: unknown): string | undefined {
  if (!isObject(rec)) return undefined;
  const iso = (k: string): unknown => {
    const o = rec[k];
    return isObject(o) ? o['iso_code'] : undefined;
  };
  const c = iso('country') ?? iso('registered_country') ?? rec['country_code'];
  return typeof c === 'string' && /^[A-Za-z0-9]{2}$/.test(c) ? c.toUpperCase() : undefined;
}

/** ASN of an MMDB record (GeoLite2-ASN and ip-location-db: `autonomous_system_number`, `autonomous_system_organization`). */
export function mmdbAsn(rec: unknown): AsnInfo | undefined {
  if (!isObject(rec)) return undefined;
  const asn = rec['autonomous_system_number'];
  if (typeof asn !== 'number' || !Number.isInteger(asn) || asn < 1 || asn > 4_294_967_295) return undefined;
  const org = rec['autonomous_system_organization'];
  return typeof org === 'string' && org !== '' ? { asn, org } : { asn };
}

async function loadMmdb(kind: GeoKind, file: string): Promise<RangeSource<string> | RangeSource<AsnInfo>> {
  let reader: Reader<Response>;
  try {
    reader = await openMmdb<Response>(file);
  } catch (cause) {
    if (isReadError(cause)) throw readError(file, cause);
    throw new RefractError('E_GEO_FORMAT', { message: `${file}: not an MMDB database (${String((cause as Error | null)?.message ?? cause)})`, details: { file }, cause });
  }
  const v6 = reader.metadata.ipVersion === 6;
  const get = (ip: string): unknown => {
    const a = mmdbAddress(ip, v6);
    if (a === undefined) return undefined;
    try {
      return reader.get(a);
    } catch {
      return undefined; // a lookup must never throw into connection handling; the address was checked above
    }
  };
  if (kind === 'country') return { find: (ip: string) => mmdbCountry(get(ip)) };
  // The reader caches decoded records, so one AsnInfo per record object is enough.
  const seen = new WeakMap<object, AsnInfo | null>();
  return {
    find(ip: string): AsnInfo | undefined {
      const rec = get(ip);
      if (!isObject(rec)) return undefined;
      let info = seen.get(rec);
      if (info === undefined) {
        info = mmdbAsn(rec) ?? null;
        seen.set(rec, info);
      }
      return info ?? undefined;
    },
  };
}

/** What geo-worker.ts posts back: the table (its own fields, cloned), or the error's parts. */
export type GeoWorkerReply =
  | { readonly ok: true; readonly table: object; readonly stats: GeoTableStats; readonly probe: { readonly ip: string; readonly value: unknown } | undefined }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly details: Record<string, unknown> };

/**
 * `loadCsv` in a worker thread (src/net/node/geo-worker.ts). The table crosses back as a structured clone of its
 * fields (sorted typed arrays and the interned values) and gets its class back here; it is checked before use (its
 * size, and one address the worker looked up answers the same here), and a table that does not survive the clone
 * is loaded on this thread instead.
 */
function loadCsvOffThread(kind: GeoKind, file: string, maxBytes: number): Promise<{ source: RangeTable<string> | RangeTable<AsnInfo>; stats: GeoTableStats }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const worker = startWorker(new URL('./geo-worker.ts', import.meta.url), { kind, file, maxBytes });
    worker.once('message', (m: GeoWorkerReply) => {
      settled = true;
      void worker.terminate();
      if (!m.ok) {
        reject(new RefractError(m.code as 'E_GEO_FORMAT', { message: m.message, details: m.details }));
        return;
      }
      const table = Object.setPrototypeOf(m.table, RangeTable.prototype) as RangeTable<string> | RangeTable<AsnInfo>;
      let same: boolean;
      try {
        same = table.size === m.stats.ranges && (m.probe === undefined || JSON.stringify(table.find(m.probe.ip)) === JSON.stringify(m.probe.value));
      } catch {
        same = false; // a field the clone could not carry (a #private one): load here instead
      }
      if (same) resolve({ source: table, stats: m.stats });
      else loadCsv(kind, file, maxBytes).then(resolve, reject);
    });
    worker.once('error', (e) => {
      settled = true;
      reject(new RefractError('E_GEO_READ', { message: `${file}: the loader failed: ${e.message}`, details: { file }, cause: e }));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new RefractError('E_GEO_READ', { message: `${file}: the loader stopped (exit ${code})`, details: { file } }));
    });
  });
}

async function loadOne(kind: GeoKind, file: string, opts: { maxBytes: number; worker: boolean }): Promise<{ source: Slot['source']; event: GeoLoadEvent }> {
  const t0 = performance.now();
  if (file.toLowerCase().endsWith('.mmdb')) {
    // maxmind reads the file asynchronously and decodes records lazily, per lookup: nothing to move off the thread.
    await checkSize(file, opts.maxBytes);
    const source = await loadMmdb(kind, file);
    return { source, event: { event: 'geo.loaded', kind, file, format: 'mmdb', ms: Math.round(performance.now() - t0) } };
  }
  const { source, stats } = opts.worker ? await loadCsvOffThread(kind, file, opts.maxBytes) : await loadCsv(kind, file, opts.maxBytes);
  return { source, event: { event: 'geo.loaded', kind, file, format: 'csv', ...stats, ms: Math.round(performance.now() - t0) } };
}

/**
 * Loads every file and returns a lookup over them, watching them unless `watch: false`.
 * @throws RefractError E_GEO_READ (details: file, code) or E_GEO_FORMAT (details: file, line for CSV) for the first
 *   file that fails; nothing is left watching then.
 */
export async function loadGeo(files: GeoFiles, opts: GeoLoaderOptions = {}): Promise<LoadedGeo> {
  const emit = opts.onEvent ?? (() => {});
  const debounceMs = opts.debounceMs ?? 200;
  const wanted: { kind: GeoKind; file: string }[] = [
    ...(files.country ?? []).map((file) => ({ kind: 'country' as const, file })),
    ...(files.asn ?? []).map((file) => ({ kind: 'asn' as const, file })),
  ];
  const how = { maxBytes: opts.maxBytes ?? GEO_MAX_BYTES, worker: opts.worker ?? true };
  // Each file's identity before its first read: the watch starts from it, so a file replaced during a long first
  // load is reloaded instead of going unseen (file-watch.ts, `baseline`).
  const baselines = wanted.map(({ file }) => fileIdentity(file));
  const loaded = await Promise.all(wanted.map(({ kind, file }) => loadOne(kind, file, how)));
  const slots: Slot[] = wanted.map(({ kind, file }, i) => ({
    kind,
    file,
    source: loaded[i]?.source ?? { find: () => undefined },
    running: undefined,
    again: false,
  }));
  for (const l of loaded) emit(l.event);

  let current: GeoLookup = combineGeo({});
  const rebuild = (): void => {
    current = combineGeo({
      country: slots.filter((s) => s.kind === 'country').map((s) => s.source as RangeSource<string>),
      asn: slots.filter((s) => s.kind === 'asn').map((s) => s.source as RangeSource<AsnInfo>),
    });
  };
  rebuild();

  let closed = false;
  const reloadSlot = (slot: Slot): Promise<void> => {
    if (slot.running !== undefined) {
      slot.again = true;
      return slot.running;
    }
    const run = async (): Promise<void> => {
      do {
        slot.again = false;
        try {
          const l = await loadOne(slot.kind, slot.file, how);
          slot.source = l.source;
          rebuild();
          emit(l.event);
        } catch (e) {
          const error = e instanceof RefractError ? e : new RefractError('E_GEO_FORMAT', { message: `${slot.file}: ${String(e)}`, details: { file: slot.file }, cause: e });
          emit({ event: 'geo.rejected', kind: slot.kind, file: slot.file, error });
        }
      } while (slot.again && !closed);
    };
    slot.running = run().finally(() => {
      slot.running = undefined;
    });
    return slot.running;
  };

  const watchers: FileWatch[] = [];
  const closeWatchers = (): void => {
    for (const w of watchers) w.close();
  };
  if (opts.watch ?? true) {
    // One watch per file: edits in place, renames over it and Kubernetes' symlink swaps (file-watch.ts).
    for (const [i, slot] of slots.entries()) {
      try {
        const w = watchFileChanges(
          slot.file,
          () => {
            if (!closed) void reloadSlot(slot);
          },
          { debounceMs, baseline: baselines[i]! },
        );
        watchers.push(w);
        if (w.watchError !== undefined) emit({ event: 'geo.polling', kind: slot.kind, file: slot.file, error: w.watchError });
      } catch (cause) {
        closeWatchers();
        throw readError(slot.file, cause);
      }
    }
  }

  return {
    country: (ip: string) => current.country(ip),
    asn: (ip: string) => current.asn(ip),
    reload: async () => {
      await Promise.all(slots.map(reloadSlot));
    },
    close: () => {
      if (closed) return;
      closed = true;
      closeWatchers();
    },
  };
}
