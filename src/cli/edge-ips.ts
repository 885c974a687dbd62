/**
 * `refract edge-ips rotate --config FILE [--token TOKEN] APP`: asks the running node's management API (`api.listen`
 * in FILE) to move APP's DNS name to fresh edge IPs (`POST …/edge_ips/rotate`, docs/api.md). Without `api:` it
 * refuses (E_EDGE_IP_ROTATE_NEEDS_API): a file-only node has no way to be told, and editing its state file behind it
 * would race the node's own writes.
 */
import { readFileSync } from 'node:fs';
import { parseConfigText, validateConfig } from '../model/config.ts';
import { parseCommand } from './args.ts';

export const EDGE_IPS_USAGE = `Usage: refract edge-ips rotate --config FILE [--token TOKEN] APP
  Move APP (an app id, or an app's dns.name) to fresh edge IPs through the running node's management API
  (api.listen in FILE; docs/api.md, "Rotating edge IPs"): the new addresses accept and are answered by the DNS
  server, the old ones stop accepting and drain. Prints the app id and its new addresses.
  Needs api: in FILE (without it: E_EDGE_IP_ROTATE_NEEDS_API).
  --token  an API token with apps:edit (default: the REFRACT_API_TOKEN environment variable)
Exit: 0 rotated; 1 FILE is unreadable or invalid, no api:, no such app, the API refused (its code is printed), or
the node did not answer (E_API_UNREACHABLE); 2 invalid command line.`;

interface Envelope {
  success?: boolean;
  errors?: Array<{ message?: string; refract_code?: string }>;
  result?: unknown;
  result_info?: { total_pages?: number };
}

export async function edgeIpsCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    process.stdout.write(EDGE_IPS_USAGE + '\n');
    return 0;
  }
  if (sub !== 'rotate') {
    const what = sub === undefined ? 'give rotate' : sub.startsWith('-') ? `unknown flag ${sub}` : `unknown subcommand '${sub}'; give rotate`;
    process.stderr.write(`refract edge-ips: ${what}\n\n${EDGE_IPS_USAGE}\n`);
    return 2;
  }
  const p = parseCommand('edge-ips rotate', rest, { config: { type: 'string', short: 'c' }, token: { type: 'string' } }, EDGE_IPS_USAGE);
  if (!p.ok) return p.code;
  const usage = (why: string): number => {
    process.stderr.write(`refract edge-ips rotate: ${why}\n\n${EDGE_IPS_USAGE}\n`);
    return 2;
  };
  const file = p.values.config;
  if (file === undefined) return usage('give --config FILE');
  if (p.positionals.length !== 1 || p.positionals[0] === '') return usage('give one APP (an app id or dns.name)');
  const token = p.values.token ?? process.env['REFRACT_API_TOKEN'];
  if (token === undefined || token === '') return usage('give --token TOKEN or set REFRACT_API_TOKEN');
  const want = p.positionals[0]!;
  const fail = (code: string, message: string): number => {
    process.stderr.write(`refract edge-ips rotate: ${code}: ${message}\n`);
    return 1;
  };

  let listen: { host: string; port: number };
  try {
    const r = validateConfig(parseConfigText(readFileSync(file, 'utf8'), file));
    if (!r.ok) return fail('E_CONFIG_INVALID', `${file} is invalid; run refract validate ${file}`);
    if (r.config.api === undefined) {
      return fail('E_EDGE_IP_ROTATE_NEEDS_API', `${file} has no api: section; rotation goes through the running node's management API`);
    }
    listen = r.config.api.listen;
  } catch (e) {
    return fail('E_CONFIG_READ', `cannot read ${file}: ${(e as Error).message}`);
  }
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}/client/v4`;
  const call = async (method: string, path: string): Promise<{ status: number; body: Envelope }> => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.json()) as Envelope };
  };
  const refused = (r: { status: number; body: Envelope }): number => {
    const e = r.body.errors?.[0];
    return fail(e?.refract_code ?? `HTTP_${r.status}`, e?.message ?? `HTTP ${r.status}`);
  };
  const pages = async (path: string): Promise<unknown[] | { status: number; body: Envelope }> => {
    const out: unknown[] = [];
    for (let page = 1; page <= 1000; page++) {
      const r = await call('GET', `${path}${path.includes('?') ? '&' : '?'}page=${page}`);
      if (r.status !== 200 || r.body.success !== true) return r;
      out.push(...((r.body.result as unknown[]) ?? []));
      if (page >= (r.body.result_info?.total_pages ?? 1)) break;
    }
    return out;
  };
  try {
    const zones = await pages('/zones');
    if (!Array.isArray(zones)) return refused(zones);
    const name = want.toLowerCase().replace(/\.$/, '');
    for (const z of zones as Array<{ id: string }>) {
      const apps = await pages(`/zones/${z.id}/spectrum/apps`);
      if (!Array.isArray(apps)) return refused(apps);
      const found = (apps as Array<{ id: string; dns?: { name?: string } }>).find((a) => a.id === want || a.dns?.name?.toLowerCase().replace(/\.$/, '') === name);
      if (found === undefined) continue;
      const r = await call('POST', `/zones/${z.id}/spectrum/apps/${found.id}/edge_ips/rotate`);
      if (r.status !== 200 || r.body.success !== true) return refused(r);
      const ips = (r.body.result as { ips?: string[] }).ips ?? [];
      process.stdout.write(`${found.id}\t${ips.join(',')}\n`);
      return 0;
    }
    return fail('E_API_APP_NOT_FOUND', `no app with id or dns.name ${want} in any zone of the node at ${base}`);
  } catch (e) {
    return fail('E_API_UNREACHABLE', `the node's API at ${base} did not answer: ${(e as Error).message}`);
  }
}
