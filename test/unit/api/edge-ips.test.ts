/**
 * Edge IPs through the management API (harness: a real EdgeNode on loopback, pool 127.0.10.0/24, which Linux routes
 * to lo): `ips` in answers, the quota as Cloudflare's 12005 at /dns/name with nothing changed, names shared and
 * released, the allocation in the database after every committed write and not after a refused one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startApi, ZONE } from './harness.ts';

const APPS = `/zones/${ZONE.id}/spectrum/apps`;

describe('edge IPs through the API', () => {
  it('allocates per name, reports ips, refuses over the quota with 12005 and changes nothing, frees on delete', async () => {
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] }, ipv4_quota: 1, drain_timeout_ms: 50 } });
    try {
      const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
      const app = (name: string, port: number) => ({ protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ['tcp://127.0.0.1:9'] });

      const a = await api.call('POST', APPS, app('a.example.com', p1));
      assert.equal(a.status, 200, JSON.stringify(a.json));
      assert.deepEqual(a.json.result.ips, ['127.0.10.1']);
      assert.deepEqual(api.store.edgeIps().names, { 'a.example.com': { ipv4: '127.0.10.1' } });
      const listeners = api.edge.listeners();
      assert.deepEqual(listeners.map((l) => `${l.host}:${l.port}`), [`127.0.10.1:${p1}`]);

      // Another name is over the quota of 1: 400, Cloudflare's 12005, at /dns/name; nothing is bound or stored.
      const b = await api.call('POST', APPS, app('b.example.com', p2));
      assert.equal(b.status, 400);
      assert.equal(b.json.errors[0].code, 12005);
      assert.equal(b.json.errors[0].refract_code, 'E_EDGE_IP_QUOTA');
      assert.equal(b.json.errors[0].source.pointer, '/dns/name');
      assert.deepEqual(api.edge.listeners(), listeners);
      assert.deepEqual(api.store.edgeIps().names, { 'a.example.com': { ipv4: '127.0.10.1' } });
      assert.equal((await api.call('GET', APPS)).json.result.length, 1);

      // The same name shares the address (no quota used); `ips` in a body is ignored.
      const a2 = await api.call('POST', APPS, { ...app('A.example.com', p3), ips: ['127.0.10.77'] });
      assert.equal(a2.status, 200, JSON.stringify(a2.json));
      assert.deepEqual(a2.json.result.ips, ['127.0.10.1']);
      const listed = (await api.call('GET', APPS)).json.result as Array<{ id: string; ips: string[] }>;
      assert.deepEqual(listed.map((x) => x.ips), [['127.0.10.1'], ['127.0.10.1']]);

      // Deleting both apps of the name frees its address; the other name fits now and takes it.
      assert.equal((await api.call('DELETE', `${APPS}/${a.json.result.id}`)).status, 200);
      assert.deepEqual(api.store.edgeIps().names, { 'a.example.com': { ipv4: '127.0.10.1' } }, 'still used by the second app');
      assert.equal((await api.call('DELETE', `${APPS}/${a2.json.result.id}`)).status, 200);
      assert.deepEqual(api.store.edgeIps().names, {});
      const b2 = await api.call('POST', APPS, app('b.example.com', p2));
      assert.equal(b2.status, 200, JSON.stringify(b2.json));
      assert.deepEqual(b2.json.result.ips, ['127.0.10.1']);
      assert.deepEqual(api.store.edgeIps().names, { 'b.example.com': { ipv4: '127.0.10.1' } });
    } finally {
      await api.close();
    }
  });

  it('a deleted name\'s address is held in the database until the drain deadline; a new name takes another', async () => {
    // The harness's API clock moves one second per reading: a 10-minute drain outlasts the test.
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] }, drain_timeout_ms: 600_000 } });
    try {
      const app = (name: string, port: number) => ({ protocol: `tcp/${port}`, dns: { type: 'CNAME', name }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ['tcp://127.0.0.1:9'] });
      const a = await api.call('POST', APPS, app('a.example.com', await freePort()));
      assert.deepEqual(a.json.result.ips, ['127.0.10.1']);
      assert.equal(api.store.edgeIps().held, undefined);
      assert.equal((await api.call('DELETE', `${APPS}/${a.json.result.id}`)).status, 200);
      const held = api.store.edgeIps();
      assert.deepEqual(held.names, {});
      assert.deepEqual(Object.keys(held.held ?? {}), ['127.0.10.1']);
      const b = await api.call('POST', APPS, app('b.example.com', await freePort()));
      assert.equal(b.status, 200, JSON.stringify(b.json));
      assert.deepEqual(b.json.result.ips, ['127.0.10.2']);
      assert.deepEqual(api.store.edgeIps().held, held.held, 'the hold is kept across writes');
    } finally {
      await api.close();
    }
  });

  it('rotate: fresh ips answered and bound, the old address refuses new connections while an open one keeps flowing, audited', async () => {
    const net = await import('node:net');
    const echo = net.createServer((c) => c.pipe(c));
    await new Promise<void>((res) => echo.listen(0, '127.0.0.1', () => res()));
    const originPort = (echo.address() as { port: number }).port;
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] }, drain_timeout_ms: 600_000 } });
    const sockets: import('node:net').Socket[] = [];
    try {
      const port = await freePort();
      const a = await api.call('POST', APPS, { protocol: `tcp/${port}`, dns: { type: 'CNAME', name: 'r.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: [`tcp://127.0.0.1:${originPort}`] });
      assert.equal(a.status, 200, JSON.stringify(a.json));
      assert.deepEqual(a.json.result.ips, ['127.0.10.1']);
      const open = net.connect({ host: '127.0.10.1', port });
      sockets.push(open);
      const got: string[] = [];
      open.on('data', (d) => got.push(d.toString()));
      const until = async (cond: () => boolean) => {
        for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setImmediate(r));
        for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
      };
      open.write('one');
      await until(() => got.join('') === 'one');
      assert.equal(got.join(''), 'one');

      const r = await api.call('POST', `${APPS}/${a.json.result.id}/edge_ips/rotate`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.result.ips, ['127.0.10.2']);
      assert.deepEqual((await api.call('GET', `${APPS}/${a.json.result.id}`)).json.result.ips, ['127.0.10.2']);
      assert.deepEqual(api.edge.listeners().map((l) => `${l.host}:${l.port}`), [`127.0.10.2:${port}`]);
      assert.deepEqual(api.store.edgeIps().names, { 'r.example.com': { ipv4: '127.0.10.2' } });
      assert.deepEqual(Object.keys(api.store.edgeIps().held ?? {}), ['127.0.10.1']);

      // The open connection keeps flowing; a new one to the old address is refused; the new address serves.
      open.write('two');
      await until(() => got.join('') === 'onetwo');
      assert.equal(got.join(''), 'onetwo');
      const refused = await new Promise<string>((res) => {
        const c = net.connect({ host: '127.0.10.1', port });
        sockets.push(c);
        c.on('connect', () => res('connected'));
        c.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
      });
      assert.equal(refused, 'ECONNREFUSED');
      const fresh = net.connect({ host: '127.0.10.2', port });
      sockets.push(fresh);
      const freshGot: string[] = [];
      fresh.on('data', (d) => freshGot.push(d.toString()));
      fresh.write('new');
      await until(() => freshGot.join('') === 'new');
      assert.equal(freshGot.join(''), 'new');

      const audit = await api.call('GET', `/zones/${ZONE.id}/audit_logs`);
      assert.equal(audit.status, 200, JSON.stringify(audit.json));
      const newest = audit.json.result[0];
      assert.equal(newest.action.type, 'rotate');
      assert.deepEqual(newest.resource.id, a.json.result.id);
    } finally {
      for (const s of sockets) s.destroy();
      echo.close();
      await api.close();
    }
  });

  it('two SSH apps with distinct names share tcp/PORT, each on its own address and origin; a real clash on an address is refused', async () => {
    const net = await import('node:net');
    // Two origins that say who they are, then echo.
    const origins = await Promise.all(
      ['one', 'two'].map(async (who) => {
        const srv = net.createServer((c) => {
          c.write(`${who}:`);
          c.pipe(c);
        });
        await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
        return { srv, port: (srv.address() as { port: number }).port };
      }),
    );
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] } } });
    const hello = (host: string, port: number): Promise<string> =>
      new Promise((res) => {
        const c = net.connect({ host, port });
        let got = '';
        const timer = setTimeout(() => done('timeout'), 5_000);
        const done = (v: string) => {
          clearTimeout(timer);
          c.destroy();
          res(v);
        };
        c.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
        c.setEncoding('utf8').on('data', (d: string) => {
          got += d;
          if (got.endsWith('ping')) done(got);
        });
        c.on('connect', () => c.write('ping'));
      });
    try {
      const port = await freePort();
      const ssh = (name: string, originPort: number, extra: Record<string, unknown> = {}) => ({
        protocol: `tcp/${port}`,
        dns: { type: 'CNAME', name },
        edge_ips: { type: 'dynamic', connectivity: 'ipv4' },
        origin_direct: [`tcp://127.0.0.1:${originPort}`],
        ...extra,
      });
      const a = await api.call('POST', APPS, ssh('ssh-a.example.com', origins[0]!.port));
      assert.equal(a.status, 200, JSON.stringify(a.json));
      const b = await api.call('POST', APPS, ssh('ssh-b.example.com', origins[1]!.port));
      assert.equal(b.status, 200, JSON.stringify(b.json));
      assert.deepEqual([a.json.result.ips, b.json.result.ips], [['127.0.10.1'], ['127.0.10.2']]);
      assert.deepEqual(
        api.edge.listeners().map((l) => `${l.host}:${l.port} ${l.app}`).sort(),
        [`127.0.10.1:${port} ${a.json.result.id}`, `127.0.10.2:${port} ${b.json.result.id}`],
      );
      // Each address's listener leads to its own app's origin, through real sockets.
      assert.equal(await hello('127.0.10.1', port), 'one:ping');
      assert.equal(await hello('127.0.10.2', port), 'two:ping');
      const listeners = api.edge.listeners();

      // Another app of ssh-a's name on the same port shares its address: refused, naming the app and address:port.
      const again = await api.call('POST', APPS, ssh('ssh-a.example.com', origins[1]!.port));
      assert.equal(again.status, 400);
      assert.equal(again.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
      assert.equal(again.json.errors[0].source.pointer, '/protocol');
      assert.match(again.json.errors[0].message, new RegExp(`${a.json.result.id}.*127\\.0\\.10\\.1:${port}`));

      // A static app on a free address of the pool takes the port too; a second static app there clashes with it.
      const st = (id: number) => ({ ...ssh('ssh-s.example.com', origins[id]!.port), dns: { type: 'ADDRESS', name: 'ssh-s.example.com' }, edge_ips: { type: 'static', ips: ['127.0.10.200'] } });
      const s1 = await api.call('POST', APPS, st(0));
      assert.equal(s1.status, 200, JSON.stringify(s1.json));
      assert.equal(await hello('127.0.10.200', port), 'one:ping');
      const withStatic = api.edge.listeners();
      const s2 = await api.call('POST', APPS, st(1));
      assert.equal(s2.status, 400);
      assert.equal(s2.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
      assert.match(s2.json.errors[0].message, new RegExp(`${s1.json.result.id}.*127\\.0\\.10\\.200:${port}`));
      assert.deepEqual(api.edge.listeners(), withStatic, 'nothing bound by a refused write');
      assert.equal((await api.call('GET', APPS)).json.result.length, 3);
      assert.equal(withStatic.length, listeners.length + 1);

      // A PUT that moves ssh-b onto ssh-a's name (and so onto its address and port) is refused too; b keeps serving.
      const moved = await api.call('PUT', `${APPS}/${b.json.result.id}`, ssh('ssh-a.example.com', origins[1]!.port));
      assert.equal(moved.status, 400);
      assert.equal(moved.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT');
      assert.equal(await hello('127.0.10.2', port), 'two:ping');
    } finally {
      for (const o of origins) o.srv.close();
      await api.close();
    }
  });

  it('rotate is refused with a code: static app, no other free address, unknown app; nothing changes', async () => {
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/30'] } } });
    try {
      const s = await api.call('POST', APPS, { protocol: `tcp/${await freePort()}`, dns: { type: 'ADDRESS', name: 's.example.com' }, edge_ips: { type: 'static', ips: ['127.0.10.2'] }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.equal(s.status, 200, JSON.stringify(s.json));
      const rs = await api.call('POST', `${APPS}/${s.json.result.id}/edge_ips/rotate`);
      assert.equal(rs.status, 400);
      assert.equal(rs.json.errors[0].refract_code, 'E_EDGE_IP_NOT_ROTATABLE');
      const d = await api.call('POST', APPS, { protocol: `tcp/${await freePort()}`, dns: { type: 'CNAME', name: 'd.example.com' }, edge_ips: { type: 'dynamic', connectivity: 'ipv4' }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.deepEqual(d.json.result.ips, ['127.0.10.1']);
      const listeners = api.edge.listeners();
      const rd = await api.call('POST', `${APPS}/${d.json.result.id}/edge_ips/rotate`);
      assert.equal(rd.status, 400);
      assert.equal(rd.json.errors[0].refract_code, 'E_EDGE_POOL_EXHAUSTED');
      assert.deepEqual(api.edge.listeners(), listeners);
      assert.deepEqual(api.store.edgeIps().names, { 'd.example.com': { ipv4: '127.0.10.1' } });
      assert.equal((await api.call('POST', `${APPS}/nope/edge_ips/rotate`)).status, 404);
    } finally {
      await api.close();
    }
  });

  it('a static IP outside the pools is refused with its pointer; without pools there is no ips field', async () => {
    const api = await startApi({ edge: { addresses: ['127.0.0.1'], pools: { ipv4: ['127.0.10.0/24'] } } });
    try {
      const r = await api.call('POST', APPS, { protocol: `tcp/${await freePort()}`, dns: { type: 'ADDRESS', name: 's.example.com' }, edge_ips: { type: 'static', ips: ['127.0.10.5', '192.0.2.1'] }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.equal(r.status, 400);
      assert.equal(r.json.errors[0].refract_code, 'E_EDGE_IP_NOT_IN_POOL');
      assert.equal(r.json.errors[0].source.pointer, '/edge_ips/ips/1');
    } finally {
      await api.close();
    }
    const plain = await startApi();
    try {
      const r = await plain.call('POST', APPS, { protocol: `tcp/${await freePort()}`, dns: { type: 'CNAME', name: 'p.example.com' }, origin_direct: ['tcp://127.0.0.1:9'] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal('ips' in r.json.result, false);
    } finally {
      await plain.close();
    }
  });
});
