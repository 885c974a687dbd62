/**
 * Reading the config file within limits, and off the data path.
 *
 * `readConfigFile` opens the file, checks its size on the open descriptor (so a replacement between the check and
 * the read cannot slip past) and refuses it with E_CONFIG_TOO_LARGE before reading a byte; otherwise it reads at
 * most the limit plus one byte (a file that grows while being read, or a pipe, is refused the same way) and hands
 * the bytes to `loadConfigBytes` (src/model/config-file.ts: encoding, node count, parse, validation).
 *
 * `loadConfigFileOffThread` does the same in a worker thread: parsing a large legal file takes seconds of CPU and
 * hundreds of MB, none of it on the thread that moves connections' bytes, and the worker's heap is capped (a file
 * that needs more is refused with E_CONFIG_TOO_COMPLEX and the process lives on). The result crosses back as plain
 * data (the structured clone of the ConfigResult) and is deep-frozen again here.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { startWorker } from './worker.ts';
import { configIssue } from '../../model/app.ts';
import { CONFIG_FILE_LIMITS, fileIssue, loadConfigBytes, tooLargeIssue, type ConfigFileLimits } from '../../model/config-file.ts';
import type { ConfigResult } from '../../model/config.ts';
import { deepFreeze } from '../../model/freeze.ts';

/** The file's bytes, at most `maxBytes`, or the issue (E_CONFIG_READ, E_CONFIG_TOO_LARGE). */
export function readConfigBytes(file: string, maxBytes: number): { ok: true; bytes: Uint8Array } | { ok: false; result: ConfigResult } {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.isFile() && st.size > maxBytes) return { ok: false, result: fileIssue(tooLargeIssue(file, st.size, maxBytes)) };
    // One byte more than allowed tells a file that grew (or a pipe) apart from one exactly at the limit.
    const cap = maxBytes + 1;
    const buf = Buffer.allocUnsafe(Math.min(cap, st.isFile() ? st.size + 1 : 64 * 1024));
    let out = buf;
    let n = 0;
    for (;;) {
      if (n === out.length) {
        if (out.length >= cap) break;
        const bigger = Buffer.allocUnsafe(Math.min(cap, out.length * 2));
        out.copy(bigger, 0, 0, n);
        out = bigger;
      }
      const got = readSync(fd, out, n, out.length - n, null);
      if (got === 0) break;
      n += got;
    }
    if (n > maxBytes) return { ok: false, result: fileIssue(tooLargeIssue(file, maxBytes, maxBytes, true)) };
    return { ok: true, bytes: out.subarray(0, n) };
  } catch (e) {
    return { ok: false, result: fileIssue(configIssue('', 'E_CONFIG_READ', `cannot read ${file}: ${(e as Error).message}`)) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Reads and loads `file` on this thread, within `limits` (what `refract validate` does). */
export function readConfigFile(file: string, limits: ConfigFileLimits = CONFIG_FILE_LIMITS): ConfigResult {
  const r = readConfigBytes(file, limits.maxBytes);
  return r.ok ? loadConfigBytes(r.bytes, file, limits) : r.result;
}

export interface OffThreadOptions {
  readonly limits?: ConfigFileLimits;
  /** Send the parsed object (`raw`) back too (the API merges it with its apps); default true. */
  readonly raw?: boolean;
  /** The worker's heap cap, MB (default 1,536); a file that needs more is refused with E_CONFIG_TOO_COMPLEX. */
  readonly maxHeapMb?: number;
}

/** What the worker posts back (src/net/node/config-worker.ts). */
export type WorkerReply = { readonly result: ConfigResult };

/** What the worker is given. */
export interface WorkerInput {
  readonly file: string;
  readonly limits: ConfigFileLimits;
  readonly raw: boolean;
}

/**
 * Reads and loads `file` in a worker thread; resolves with the ConfigResult (config deep-frozen). Never rejects:
 * a worker that runs out of its heap gives E_CONFIG_TOO_COMPLEX, one that fails otherwise E_CONFIG_READ.
 */
export function loadConfigFileOffThread(file: string, opts: OffThreadOptions = {}): Promise<ConfigResult> {
  const input: WorkerInput = { file, limits: opts.limits ?? CONFIG_FILE_LIMITS, raw: opts.raw ?? true };
  const maxHeapMb = opts.maxHeapMb ?? 1536;
  return new Promise<ConfigResult>((resolve) => {
    let settled = false;
    const done = (r: ConfigResult): void => {
      if (settled) return;
      settled = true;
      resolve(r.ok ? { ...r, config: deepFreeze(r.config) } : r);
    };
    let worker: Worker;
    try {
      worker = startWorker(new URL('./config-worker.ts', import.meta.url), input, { maxOldGenerationSizeMb: maxHeapMb });
    } catch (e) {
      done(fileIssue(configIssue('', 'E_CONFIG_READ', `cannot load ${file}: no worker thread (${(e as Error).message})`)));
      return;
    }
    worker.once('message', (m: WorkerReply) => {
      done(m.result);
      void worker.terminate();
    });
    worker.once('error', (e: Error & { code?: string }) => {
      done(
        e.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? fileIssue(configIssue('', 'E_CONFIG_TOO_COMPLEX', `${file}: parsing needed more than ${maxHeapMb} MB; nothing was applied`))
          : fileIssue(configIssue('', 'E_CONFIG_READ', `cannot load ${file}: ${e.message}`)),
      );
    });
    worker.once('exit', (code) => done(fileIssue(configIssue('', 'E_CONFIG_READ', `cannot load ${file}: the loader stopped (exit ${code})`))));
  });
}
