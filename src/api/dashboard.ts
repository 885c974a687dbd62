/**
 * The dashboard's static side: `GET /dashboard/` (index.html), `/dashboard/app.js` and `/dashboard/app.css`, served
 * without credentials (they hold no data; every data call of the page goes to the API with the user's token).
 *
 * The browser code (src/dashboard, Preact + uPlot) is bundled by esbuild: once by `npm run build` (which `npm install`
 * runs in a checkout) into dist/dashboard/, which the built server serves; or, when running from the sources, in
 * memory, once per process, when the first API server becomes ready. Nothing is fetched from outside (preact, uplot
 * and uPlot's CSS come from node_modules). A failed bundle is E_DASHBOARD_BUILD: logged once, answered 503 on
 * /dashboard/, and never a crash of the API or the proxy.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ERRORS } from '../model/errors.ts';

/** Where the dashboard lives on the API listener. */
export const DASHBOARD_PATH = '/dashboard';

/** No external origin anywhere: scripts, styles and data come from this server only. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface DashboardBundle {
  readonly js: string;
  readonly css: string;
  readonly jsTag: string;
  readonly cssTag: string;
}

export type BundleResult = { readonly ok: true; readonly bundle: DashboardBundle } | { readonly ok: false; readonly message: string };

/** The entry file: next to this module in the source tree, or under src/ beside dist/ in a checkout's build. */
export function dashboardEntry(): string | undefined {
  const candidates = ['../dashboard/main.tsx', '../../src/dashboard/main.tsx'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((p) => existsSync(p));
}

/**
 * The bundle `npm run build` wrote beside the compiled server (dist/dashboard/app.js and app.css): what an installed
 * package serves. Undefined when running from the sources (src/dashboard holds no app.js).
 */
export function prebuiltDashboard(dir: URL = new URL('../dashboard/', import.meta.url)): BundleResult | undefined {
  const js = fileURLToPath(new URL('app.js', dir));
  if (!existsSync(js)) return undefined;
  try {
    const code = readFileSync(js, 'utf8');
    const cssFile = fileURLToPath(new URL('app.css', dir));
    const css = existsSync(cssFile) ? readFileSync(cssFile, 'utf8') : '';
    return { ok: true, bundle: { js: code, css, jsTag: etag(code), cssTag: etag(css) } };
  } catch (e) {
    return { ok: false, message: `the built dashboard could not be read: ${e instanceof Error ? e.message : String(e)}` };
  }
}

const etag = (text: string): string => `"${createHash('sha256').update(text).digest('base64url').slice(0, 22)}"`;

/**
 * Bundles src/dashboard/main.tsx (JS and CSS) in memory with esbuild, a development dependency: `npm run build` does
 * it once for the installed package (scripts/bundle-dashboard.ts), and a node running from the sources does it at
 * start. Never rejects: a failure is `{ok: false}`.
 */
export async function buildDashboard(entry: string | undefined = dashboardEntry()): Promise<BundleResult> {
  if (entry === undefined) return { ok: false, message: 'the dashboard source (src/dashboard/main.tsx) is missing from this installation; run npm run build' };
  try {
    const esbuild = await import('esbuild');
    const out = await esbuild.build({
      entryPoints: { app: entry },
      bundle: true,
      write: false,
      outdir: 'dashboard-out',
      format: 'iife',
      platform: 'browser',
      target: ['es2020'],
      minify: true,
      legalComments: 'none',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      loader: { '.css': 'css' },
      logLevel: 'silent',
    });
    const js = out.outputFiles.find((f) => f.path.endsWith('.js'))?.text;
    const css = out.outputFiles.find((f) => f.path.endsWith('.css'))?.text ?? '';
    if (js === undefined) return { ok: false, message: 'esbuild produced no JavaScript' };
    return { ok: true, bundle: { js, css, jsTag: etag(js), cssTag: etag(css) } };
  } catch (e) {
    const errors = (e as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors;
    const message = errors?.length
      ? errors.map((x) => `${x.location ? `${x.location.file}:${x.location.line}: ` : ''}${x.text}`).join('; ')
      : e instanceof Error ? e.message : String(e);
    return { ok: false, message };
  }
}

let shared: Promise<BundleResult> | undefined;

/** The process-wide bundle: the built one of an installed package, else bundled once from the sources on first use. */
export function dashboardBundle(): Promise<BundleResult> {
  shared ??= Promise.resolve(prebuiltDashboard() ?? buildDashboard());
  return shared;
}

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Refract dashboard</title>
<link rel="stylesheet" href="app.css">
<script src="app.js" defer></script>
</head>
<body>
<div id="app"><noscript>The Refract dashboard needs JavaScript.</noscript></div>
</body>
</html>
`;

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

function failure(reply: FastifyReply, status: number, code: 'E_DASHBOARD_BUILD' | 'E_DASHBOARD_DISABLED', message: string): FastifyReply {
  return securityHeaders(reply)
    .code(status)
    .header('cache-control', 'no-store')
    .type('application/json')
    .send({ success: false, errors: [{ code: 1000, message, refract_code: code }], messages: [], result: null });
}

/** Route config marking a public (credential-free) dashboard route: the auth hook lets these through. */
export const PUBLIC_ROUTE = { refractPublic: true } as const;

export function isPublicRoute(req: FastifyRequest): boolean {
  return (req.routeOptions.config as { refractPublic?: boolean } | undefined)?.refractPublic === true;
}

/**
 * Registers the dashboard's routes on `app`. `enabled: false` (api.dashboard: false): they answer 404
 * E_DASHBOARD_DISABLED. The bundle starts building when the server is ready.
 */
export function registerDashboard(app: FastifyInstance, opts: { enabled: boolean; log?: Logger | undefined; bundle?: () => Promise<BundleResult> }): void {
  const get = opts.bundle ?? dashboardBundle;
  let logged = false;
  const bundle = async (): Promise<BundleResult> => {
    const r = await get();
    if (!r.ok && !logged) {
      logged = true;
      opts.log?.error({ event: 'dashboard.build_failed', code: 'E_DASHBOARD_BUILD', message: r.message }, 'the dashboard could not be bundled; the API runs without it');
    }
    return r;
  };
  if (opts.enabled) app.addHook('onReady', async () => void bundle());

  const serve = (kind: 'html' | 'js' | 'css') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!opts.enabled) return failure(reply, 404, 'E_DASHBOARD_DISABLED', ERRORS.E_DASHBOARD_DISABLED.message);
    const r = await bundle();
    if (!r.ok) return failure(reply, 503, 'E_DASHBOARD_BUILD', `${ERRORS.E_DASHBOARD_BUILD.message} (${r.message})`);
    securityHeaders(reply);
    if (kind === 'html') return reply.code(200).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(INDEX_HTML);
    const [body, tag, type] = kind === 'js' ? [r.bundle.js, r.bundle.jsTag, 'text/javascript; charset=utf-8'] : [r.bundle.css, r.bundle.cssTag, 'text/css; charset=utf-8'];
    // Revalidated on every load (the ETag changes when the node restarts with other code); 304 when unchanged.
    void reply.header('cache-control', 'no-cache').header('etag', tag);
    if (req.headers['if-none-match'] === tag) return reply.code(304).send();
    return reply.code(200).type(type).send(body);
  };

  app.get(DASHBOARD_PATH, { config: PUBLIC_ROUTE }, async (_req, reply) => reply.redirect(`${DASHBOARD_PATH}/`, 301));
  app.get(`${DASHBOARD_PATH}/`, { config: PUBLIC_ROUTE }, serve('html'));
  app.get(`${DASHBOARD_PATH}/app.js`, { config: PUBLIC_ROUTE }, serve('js'));
  app.get(`${DASHBOARD_PATH}/app.css`, { config: PUBLIC_ROUTE }, serve('css'));
}
