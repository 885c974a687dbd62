/**
 * `edge.udp_receive_buffer` on real sockets: the edge UDP socket asks for it, reports what the kernel granted
 * (Linux: at most net.core.rmem_max), and the EdgeNode logs when that is less than asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createNodeNetwork } from '../../../src/net/node/network.ts';
import { EdgeNode } from '../../../src/edge/edge-node.ts';
import { mustConfig } from '../../helpers/edge.ts';

const linux = process.platform === 'linux';
const rmemMax = linux ? Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()) : 0;

test('bindUdp asks for the receive buffer and reports what was granted', { skip: !linux && 'Linux only (rmem_max)' }, async () => {
  const net = createNodeNetwork();
  const small = Math.min(256 * 1024, rmemMax);
  const a = await net.bindUdp({ host: '127.0.0.1', port: 0, receiveBufferBytes: small });
  assert.equal(a.receiveBufferBytes, small);
  const b = await net.bindUdp({ host: '127.0.0.1', port: 0, receiveBufferBytes: rmemMax + 1024 * 1024 });
  assert.equal(b.receiveBufferBytes, rmemMax, 'capped at net.core.rmem_max');
  a.close();
  b.close();
});

test('the edge logs udp.receive_buffer when the kernel grants less than edge.udp_receive_buffer', { skip: !linux && 'Linux only (rmem_max)' }, async () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(c: Buffer, _e, cb) {
        for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const raw = (buffer: number) => ({
    edge: { addresses: ['127.0.0.1'], udp_receive_buffer: buffer },
    apps: [{ id: 'u', dns: { type: 'CNAME', name: 'u.example.test' }, protocol: 'udp/7821', origin_direct: ['udp://127.0.0.1:7822'] }],
  });
  const tooBig = mustConfig(raw(rmemMax + 1024 * 1024));
  const edge = new EdgeNode({ net: createNodeNetwork(), log }, tooBig);
  await edge.apply(tooBig);
  const warn = lines.filter((l) => l['event'] === 'udp.receive_buffer');
  assert.equal(warn.length, 1);
  assert.equal(warn[0]!['asked'], rmemMax + 1024 * 1024);
  assert.equal(warn[0]!['got'], rmemMax);
  await edge.shutdown(10);

  lines.length = 0;
  const fits = mustConfig(raw(Math.min(rmemMax, 1024 * 1024)));
  const edge2 = new EdgeNode({ net: createNodeNetwork(), log }, fits);
  await edge2.apply(fits);
  assert.equal(lines.filter((l) => l['event'] === 'udp.receive_buffer').length, 0);
  await edge2.shutdown(10);
});

test('edge.udp_receive_buffer: default 4 MiB, bounds checked', () => {
  const base = { edge: { addresses: ['127.0.0.1'] }, apps: [] };
  assert.equal(mustConfig(base).node.udpReceiveBufferBytes, 4 * 1024 * 1024);
  assert.throws(() => mustConfig({ edge: { addresses: ['127.0.0.1'], udp_receive_buffer: 100 }, apps: [] }), /E_CONFIG_SCHEMA/);
});
