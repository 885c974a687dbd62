/**
 * The dashboard's one door to the management API: every call carries the token (Authorization: Bearer), kept in
 * sessionStorage (gone when the tab closes). Answers use Cloudflare's envelope; a failure becomes ApiFailure with
 * the API's errors (code, refract_code, source.pointer) so forms can show them at their fields.
 */

/** Every API route the dashboard calls (method and fastify path pattern): a unit test checks each is in ROUTE_DOCS. */
export const ENDPOINTS = {
  verify: 'GET /client/v4/user/tokens/verify',
  zones: 'GET /client/v4/zones',
  apps: 'GET /client/v4/zones/:zone/spectrum/apps',
  createApp: 'POST /client/v4/zones/:zone/spectrum/apps',
  replaceApp: 'PUT /client/v4/zones/:zone/spectrum/apps/:app',
  deleteApp: 'DELETE /client/v4/zones/:zone/spectrum/apps/:app',
  rules: 'GET /client/v4/zones/:zone/firewall/access_rules/rules',
  createRule: 'POST /client/v4/zones/:zone/firewall/access_rules/rules',
  deleteRule: 'DELETE /client/v4/zones/:zone/firewall/access_rules/rules/:rule',
  machines: 'GET /client/v4/refract/machines',
  engineStates: 'GET /client/v4/refract/engine/states',
  health: 'GET /client/v4/refract/health',
  events: 'GET /client/v4/refract/events/stream',
} as const;

/**
 * Spectrum's analytics routes the charts module calls (src/dashboard/charts.tsx); in ROUTE_DOCS like the others. A
 * node without the analytics store answers them 404 and the charts say "analytics not available".
 */
export const ANALYTICS_ENDPOINTS = {
  bytime: 'GET /client/v4/zones/:zone/spectrum/analytics/events/bytime',
} as const;

export interface ApiError {
  readonly code: number;
  readonly message: string;
  readonly refract_code?: string;
  readonly source?: { readonly pointer: string };
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly errors: readonly ApiError[],
  ) {
    super(errors.map((e) => e.message).join('; ') || `HTTP ${status}`);
  }
}

const KEY = 'refract.token';

export function savedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, token);
}

/** `/client/v4/zones/:zone/x` with the parameters filled in (URI-encoded). */
export function path(route: string, params: Record<string, string> = {}, query: Record<string, string> = {}): string {
  const p = route.replace(/^[A-Z]+ /, '').replace(/:(\w+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '')).toString();
  return q === '' ? p : `${p}?${q}`;
}

function method(route: string): string {
  return route.split(' ')[0] ?? 'GET';
}

/** Calls `route` with the saved token (or `token`); resolves to `result`, or rejects with ApiFailure. */
export async function call<T>(route: string, opts: { params?: Record<string, string>; query?: Record<string, string>; body?: unknown; token?: string } = {}): Promise<T> {
  const token = opts.token ?? savedToken() ?? '';
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path(route, opts.params, opts.query), { method: method(route), headers, ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }) });
  let json: { success?: boolean; result?: T; errors?: ApiError[] } = {};
  try {
    json = (await res.json()) as typeof json;
  } catch {
    // not JSON: reported by status below
  }
  if (!res.ok || json.success !== true) throw new ApiFailure(res.status, json.errors ?? []);
  return json.result as T;
}

/** Every page of a paged list (at most `maxPages`). */
export async function callAll<T>(route: string, params: Record<string, string>, perPage = 100, maxPages = 20): Promise<T[]> {
  const out: T[] = [];
  for (let page = 1; page <= maxPages; page++) {
    const items = await call<T[]>(route, { params, query: { page: String(page), per_page: String(perPage) } });
    out.push(...items);
    if (items.length < perPage) break;
  }
  return out;
}

/**
 * Reads a Server-Sent Events stream with the token (fetch, since EventSource cannot send headers) and calls `on`
 * for each message; resolves when the stream ends, rejects on an HTTP error. Abort with `signal`.
 */
export async function stream(route: string, query: Record<string, string>, signal: AbortSignal, on: (event: string, data: string) => void): Promise<void> {
  const res = await fetch(path(route, {}, query), { headers: { authorization: `Bearer ${savedToken() ?? ''}`, accept: 'text/event-stream' }, signal });
  if (!res.ok || res.body === null) {
    let errors: ApiError[] = [];
    try {
      errors = ((await res.json()) as { errors?: ApiError[] }).errors ?? [];
    } catch {
      // not JSON
    }
    throw new ApiFailure(res.status, errors);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end = buf.indexOf('\n\n');
    while (end >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) on(event, data.join('\n'));
      end = buf.indexOf('\n\n');
    }
  }
}

/** Which form field an API error belongs to: the first segment of its pointer (`/origin_direct/0` → origin_direct). */
export function fieldOf(e: ApiError): string {
  const p = e.source?.pointer ?? '';
  return p.split('/')[1] ?? '';
}
