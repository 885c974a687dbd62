/**
 * The worker thread of geo-loader.ts's `loadCsvOffThread`: reads and parses one geolocation CSV file and posts the
 * table back (its fields, cloned), with one address and its value to check the copy by, or the error; then ends.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { loadCsv, type GeoKind, type GeoWorkerReply } from './geo-loader.ts';
import { isRefractError } from '../../model/errors.ts';

const input = workerData as { kind: GeoKind; file: string; maxBytes: number };

/** An address the table knows (the first row's start, else a few well-known ones) and its value there. */
function probeOf(table: { find(ip: string): unknown }): { ip: string; value: unknown } | undefined {
  let first: string | undefined;
  try {
    const fd = openSync(input.file, 'r');
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    first = head.subarray(0, n).toString('utf8').split('\n').find((l) => l.trim() !== '' && !l.startsWith('#'))?.split(',')[0]?.trim();
  } catch {
    first = undefined;
  }
  for (const ip of [...(first !== undefined && /[.:]/.test(first) ? [first] : []), '1.1.1.1', '8.8.8.8', '2001:4860:4860::8888', '2606:4700:4700::1111']) {
    const value = table.find(ip);
    if (value !== undefined) return { ip, value };
  }
  return undefined;
}

let reply: GeoWorkerReply;
try {
  const { source, stats } = await loadCsv(input.kind, input.file, input.maxBytes);
  reply = { ok: true, table: source, stats, probe: probeOf(source) };
} catch (e) {
  reply = isRefractError(e)
    ? { ok: false, code: e.code, message: e.message, details: { ...(e.details ?? {}) } }
    : { ok: false, code: 'E_GEO_FORMAT', message: `${input.file}: ${String(e)}`, details: { file: input.file } };
}
parentPort?.postMessage(reply);
