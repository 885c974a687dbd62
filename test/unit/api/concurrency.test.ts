/**
 * Many clients writing at once, over real loopback sockets (harness.ts). Writes are applied one at a time in
 * arrival order (src/api/config-source.ts), so whatever the interleaving: every acknowledged write is in the final
 * state exactly as acknowledged, every refused one got a coded 400, no two apps of one protocol share an edge port,
 * a refusal for a port conflict names a conflict that exists, reads during the burst see only committed apps, and
 * the edge listens on exactly the final apps' ports.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { startApi, ZONE, type ApiUnderTest } from './harness.ts';
import { freeRanges } from './processes.ts';

const APPS = `/zones/${ZONE.id}/spectrum/apps`;

interface Range {
  proto: 'tcp' | 'udp';
  start: number;
  end: number;
}

function rangeOf(protocol: string): Range {
  const m = /^(tcp|udp)\/(\d+)(?:-(\d+))?$/.exec(protocol);
  assert.ok(m, `protocol ${protocol}`);
  return { proto: m[1] as 'tcp' | 'udp', start: Number(m[2]), end: Number(m[3] ?? m[2]) };
}

const overlap = (a: Range, b: Range): boolean => a.proto === b.proto && a.start <= b.end && b.start <= a.end;

function body(protocol: string, name: string): Record<string, unknown> {
  const proto = protocol.split('/')[0];
  return { protocol, dns: { type: 'CNAME', name }, origin_direct: [`${proto}://127.0.0.1:9`] };
}

function connectOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => s.destroy(), 3000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

interface Outcome {
  readonly body: Record<string, unknown>;
  readonly status: number;
  readonly json: any;
}

describe('management API under concurrent writes', () => {
  let api: ApiUnderTest;
  before(async () => {
    api = await startApi({ edge: { addresses: ['127.0.0.1'], drain_timeout_ms: 0 } }, { rateLimit: { requests: 1_000_000, windowSec: 60 } });
  });
  after(() => api.close());

  /** The final state's invariants, against the acknowledged creates and deletes. */
  async function checkFinal(expected: ReadonlyMap<string, any>): Promise<any[]> {
    const list = await api.call('GET', `${APPS}?per_page=100`);
    assert.equal(list.status, 200);
    const final: any[] = list.json.result;
    assert.equal(list.json.result_info.total_count, final.length, 'one page holds every app');
    assert.deepEqual(new Set(final.map((a) => a.id)), new Set(expected.keys()), 'the final apps are exactly the acknowledged ones');
    for (const a of final) assert.deepEqual(a, expected.get(a.id), 'each app is exactly as acknowledged');
    assert.deepEqual(new Set(api.store.apps().map((a) => a.appId)), new Set(expected.keys()), 'the database holds the same apps');
    const ranges = final.map((a) => rangeOf(a.protocol));
    for (let i = 0; i < ranges.length; i++) {
      for (let j = 0; j < i; j++) assert.ok(!overlap(ranges[i]!, ranges[j]!), `${final[i].protocol} and ${final[j].protocol} share a port`);
    }
    const want = ranges.flatMap((r) => Array.from({ length: r.end - r.start + 1 }, (_, k) => `${r.proto}|127.0.0.1|${r.start + k}`)).sort();
    assert.deepEqual(api.edge.listeners().map((l) => `${l.protocol}|${l.host}|${l.port}`).sort(), want, 'the edge listens on exactly the final apps\' ports');
    for (const r of ranges.filter((x) => x.proto === 'tcp')) assert.ok(await connectOnce(r.start), `tcp/${r.start} accepts`);
    return final;
  }

  /** Every refusal is a coded 400 for a conflict with an app that is in the final state. */
  function checkRefusals(outcomes: readonly Outcome[], final: readonly any[]): void {
    for (const o of outcomes.filter((x) => x.status !== 200)) {
      assert.equal(o.status, 400, JSON.stringify(o.json));
      assert.equal(o.json.success, false);
      assert.equal(o.json.errors[0].refract_code, 'E_CONFIG_EDGE_CONFLICT', JSON.stringify(o.json));
      const mine = rangeOf(String(o.body['protocol']));
      assert.ok(final.some((a) => overlap(rangeOf(a.protocol), mine)), `${String(o.body['protocol'])} was refused, but no final app overlaps it`);
    }
  }

  it('50 clients creating at once, some pairs after the same port: one winner per port, the rest refused with a code', { timeout: 60_000 }, async () => {
    const avoid = new Set<number>();
    const unique = await freeRanges(20, 1, { udp: true, avoid });
    const contested = await freeRanges(10, 1, { avoid });
    const [tri] = (await freeRanges(1, 3, { avoid })) as [number];
    const bodies: Record<string, unknown>[] = [
      ...unique.map((p, i) => body(`tcp/${p}`, `u${i}.example.com`)),
      // Two apps want each of these ports.
      ...contested.flatMap((p, i) => [body(`tcp/${p}`, `a${i}.example.com`), body(`tcp/${p}`, `b${i}.example.com`)]),
      // The same port numbers as TCP apps above, but UDP: no conflict.
      ...unique.slice(0, 5).map((p, i) => body(`udp/${p}`, `udp${i}.example.com`)),
      // A range against two single ports inside it: either the range wins, or both singles do.
      body(`tcp/${tri}-${tri + 2}`, 'range.example.com'),
      body(`tcp/${tri + 1}`, 'single1.example.com'),
      body(`tcp/${tri + 2}`, 'single2.example.com'),
      // The very same body twice (UDP).
      body(`udp/${unique[18]!}`, 'twin.example.com'),
      body(`udp/${unique[18]!}`, 'twin.example.com'),
    ];
    const writes = bodies;
    assert.equal(writes.length, 50);

    // Readers during the burst: a list shows committed apps only, so every app it shows is in the final state.
    const seenDuring: any[][] = [];
    const readers = Array.from({ length: 10 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 3));
      const l = await api.call('GET', `${APPS}?per_page=100`);
      assert.equal(l.status, 200);
      seenDuring.push(l.json.result);
    });
    const outcomes: Outcome[] = await Promise.all(writes.map(async (b) => ({ body: b, ...(await api.call('POST', APPS, b)) })));
    await Promise.all(readers);

    const acked = outcomes.filter((o) => o.status === 200);
    const expected = new Map(acked.map((o) => [o.json.result.id as string, o.json.result]));
    const final = await checkFinal(expected);
    checkRefusals(outcomes, final);

    // Exactly one winner per contested port, every unique port and UDP twin won, the range triple resolved one way.
    for (const p of contested) assert.equal(final.filter((a) => a.protocol === `tcp/${p}`).length, 1, `tcp/${p}`);
    for (const p of unique) assert.equal(final.filter((a) => a.protocol === `tcp/${p}`).length, 1, `tcp/${p}`);
    assert.equal(final.filter((a) => a.protocol.startsWith('udp/')).length, 6);
    const triWinners = final.filter((a) => ['range', 'single1', 'single2'].includes(a.dns.name.split('.')[0])).map((a) => a.dns.name.split('.')[0]).sort();
    assert.ok(JSON.stringify(triWinners) === '["range"]' || JSON.stringify(triWinners) === '["single1","single2"]', JSON.stringify(triWinners));
    assert.equal(acked.length, 20 + 10 + 5 + triWinners.length + 1);

    for (const list of seenDuring) {
      for (const a of list) assert.deepEqual(a, expected.get(a.id), 'a list during the burst showed an app that is not in the final state');
    }
  });

  it('deletes and creates at once, creates on the ports being freed: the final state is the acknowledged writes', { timeout: 60_000 }, async () => {
    const start = await api.call('GET', `${APPS}?per_page=100`);
    const existing: any[] = start.json.result.filter((a: any) => a.protocol.startsWith('tcp/') && !a.protocol.includes('-'));
    assert.ok(existing.length >= 20);
    const doomed = existing.slice(0, 20);
    const fresh = await freeRanges(10, 1, { avoid: new Set(existing.map((a) => rangeOf(a.protocol).start)) });
    const creates = [
      // On a port whose app is being deleted meanwhile: 200 if the delete came first, else a conflict.
      ...doomed.map((a, i) => body(a.protocol, `reuse${i}.example.com`)),
      ...fresh.map((p, i) => body(`tcp/${p}`, `fresh${i}.example.com`)),
    ];
    const ops: Array<Promise<{ kind: 'delete'; id: string; status: number } | ({ kind: 'create' } & Outcome)>> = [];
    for (let i = 0; i < Math.max(doomed.length, creates.length); i++) {
      const d = doomed[i];
      if (d !== undefined) ops.push(api.call('DELETE', `${APPS}/${d.id}`).then((r) => ({ kind: 'delete' as const, id: d.id, status: r.status })));
      const c = creates[i];
      if (c !== undefined) ops.push(api.call('POST', APPS, c).then((r) => ({ kind: 'create' as const, body: c, ...r })));
    }
    const done = await Promise.all(ops);

    const expected = new Map<string, any>(start.json.result.map((a: any) => [a.id, a]));
    for (const o of done) {
      if (o.kind === 'delete') {
        assert.equal(o.status, 200, 'every delete of an existing app succeeds');
        expected.delete(o.id);
      }
    }
    const createOutcomes = done.filter((o): o is { kind: 'create' } & Outcome => o.kind === 'create');
    for (const o of createOutcomes) if (o.status === 200) expected.set(o.json.result.id, o.json.result);
    const final = await checkFinal(expected);
    checkRefusals(createOutcomes, final);
    for (const o of createOutcomes.filter((x) => (x.body['dns'] as { name: string }).name.startsWith('fresh'))) assert.equal(o.status, 200, JSON.stringify(o.json));
  });
});
