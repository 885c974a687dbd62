/**
 * The edge-IP state file of `refract serve` without `api:` (with `api:` the allocation lives in the API's
 * database): `<node.data_dir>/edge-ips.json`, `{"version": 1, "names": {"<dns name>": {"ipv4": "…", "ipv6": "…"}}, "held": {"<address>": <free from, epoch ms>}}`
 * (`held` only when an address given back is still held until its drain deadline),
 * written after every applied change that moved an address (a temporary file, then a rename, so a crash never leaves
 * half a file), read at start so a restart keeps every name's addresses.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { edgeIpStateFrom, EMPTY_EDGE_IPS, type EdgeIpState } from '../model/edge-ips.ts';

export const EDGE_IP_FILE = 'edge-ips.json';

/** Where the state file of `configFile` lives (its data_dir is relative to the config file's folder). */
export function edgeIpFilePath(configFile: string, dataDir: string): string {
  return join(resolve(dirname(resolve(configFile)), dataDir), EDGE_IP_FILE);
}

/**
 * The state in `path`: empty when there is no file. A file that cannot be read or parsed is reported through
 * `onBad` and read as empty (every name then takes fresh addresses, and the next write replaces the file).
 */
export function readEdgeIpFile(path: string, onBad: (err: unknown) => void): EdgeIpState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') onBad(e);
    return EMPTY_EDGE_IPS;
  }
  try {
    return edgeIpStateFrom(JSON.parse(text));
  } catch (e) {
    onBad(e);
    return EMPTY_EDGE_IPS;
  }
}

/** Writes `state` to `path` atomically (temporary file in the same folder, then rename). */
export function writeEdgeIpFile(path: string, state: EdgeIpState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 }); // the data directory: the local CA lives here too by default
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ version: 1, names: state.names, ...(state.held === undefined ? {} : { held: state.held }) }, null, 2) + '\n');
  renameSync(tmp, path);
}
