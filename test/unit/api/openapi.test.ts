/**
 * The OpenAPI document: served to any valid token, lists exactly the registered routes, its request schemas are
 * the validator's fields, every $ref resolves, and the permission it states for each route is the one the server
 * enforces (a token holding every permission but that one gets 403).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KNOWN_APP_FIELDS } from '../../../src/model/app.ts';
import { ROUTE_DOCS } from '../../../src/api/openapi.ts';
import { createToken, PERMISSIONS } from '../../../src/api/tokens.ts';
import { startApi, ZONE } from './harness.ts';

type Doc = {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, { 'x-refract-permission': string; requestBody?: unknown; parameters: Array<{ name: string; in: string }>; responses: Record<string, { content?: Record<string, unknown> }> }>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
};

/** Every `$ref` string anywhere in `v`. */
function refs(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) refs(x, out);
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.push(x);
      else refs(x, out);
    }
  }
  return out;
}

describe('GET /client/v4/openapi.json', () => {
  it('is served to any valid token (401 without), lists exactly the registered routes, and its refs resolve', async () => {
    const api = await startApi();
    try {
      assert.equal((await api.call('GET', '/openapi.json', undefined, { auth: false })).status, 401);
      const r = await api.call('GET', '/openapi.json');
      assert.equal(r.status, 200);
      assert.match(r.type ?? '', /^application\/json/);
      const doc = r.json as Doc;
      assert.equal(doc.openapi, '3.1.0');
      const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
      assert.deepEqual(documented.sort(), Object.keys(ROUTE_DOCS).sort(), 'every ROUTE_DOCS entry is a registered route and the other way round');
      for (const ref of refs(doc)) {
        const name = /^#\/components\/schemas\/(\w+)$/.exec(ref)?.[1];
        assert.ok(name !== undefined && doc.components.schemas[name] !== undefined, `unresolved $ref ${ref}`);
      }
      // The request body schema is generated from the validator's own field list.
      assert.deepEqual(Object.keys(doc.components.schemas['AppInput']!.properties!).sort(), [...KNOWN_APP_FIELDS].sort());
      assert.ok(doc.paths['/client/v4/zones/{zone}/spectrum/apps']!['post']!.requestBody !== undefined);
      assert.deepEqual(
        doc.paths['/client/v4/zones/{zone}/spectrum/apps/{app}']!['get']!.parameters.map((p) => `${p.in}:${p.name}`),
        ['path:zone', 'path:app'],
      );
    } finally {
      await api.close();
    }
  });

  it('states the permission each route enforces', async () => {
    const api = await startApi();
    try {
      const doc = (await api.call('GET', '/openapi.json')).json as Doc;
      let checked = 0;
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          const perm = op['x-refract-permission'];
          const root = !path.startsWith('/client/v4');
          const url = path.replace('/client/v4', '').replace('{zone}', ZONE.id).replace(/\{\w+\}/g, '0123456789abcdef0123456789abcdef');
          const body = method === 'post' || method === 'put' || method === 'patch' ? {} : undefined;
          const stream = op.responses['200']?.content?.['text/event-stream'] !== undefined;
          const status = async (permissions: readonly (typeof PERMISSIONS)[number][]): Promise<number> => {
            const token = createToken(api.store, `t${checked}`, new Date(0), { permissions }).token;
            if (!stream) return (await api.call(method.toUpperCase(), url, body, { auth: token, ...(root ? { root: true as const } : {}) })).status;
            // A Server-Sent Events route never ends: read the status line, then hang up.
            const ctl = new AbortController();
            const res = await fetch(api.base + url, { method: method.toUpperCase(), headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
            ctl.abort();
            return res.status;
          };
          if ((PERMISSIONS as readonly string[]).includes(perm)) {
            assert.equal(await status(PERMISSIONS.filter((p) => p !== perm)), 403, `${method} ${path} without ${perm}`);
            assert.notEqual(await status([perm as (typeof PERMISSIONS)[number]]), 403, `${method} ${path} with only ${perm}`);
          } else if (perm === 'any') {
            assert.equal(await status([]), 403, `${method} ${path} with no permission`);
            assert.notEqual(await status([PERMISSIONS[0]]), 403, `${method} ${path} with one permission`);
          } else if (perm === 'none') {
            assert.equal(await status([]), 200, `${method} ${path} with no permission`);
          } else {
            assert.fail(`${method} ${path}: unknown permission ${perm}`);
          }
          checked++;
        }
      }
      assert.equal(checked, Object.keys(ROUTE_DOCS).length);
    } finally {
      await api.close();
    }
  });
});
