/**
 * Built-in demo origins (config `origins:`) on real loopback sockets: a UDP app in front of a builtin UDP echo
 * origin answers; a UDP discard origin stays silent; TCP builtins still echo. Ports 8740-8749 belong to this file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { startEdge, mustConfig } from '../../helpers/edge.ts';
import { startBuiltinOrigins } from '../../../src/edge/builtin-origins.ts';

const silent = pino({ level: 'silent' });

/** Sends `text` from a fresh client socket to 127.0.0.1:`port`; resolves with the first reply, or undefined after `ms`. */
async function ask(port: number, text: string, ms = 2000): Promise<string | undefined> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  try {
    const reply = new Promise<string | undefined>((res) => {
      const t = setTimeout(() => res(undefined), ms);
      s.once('message', (d) => {
        clearTimeout(t);
        res(d.toString());
      });
    });
    s.send(text, port, '127.0.0.1');
    return await reply;
  } finally {
    s.close();
  }
}

const raw = {
  edge: { addresses: ['127.0.0.1'] },
  origins: [
    { name: 'udp-echo', listen: 'udp://127.0.0.1:8745-8746', behaviour: 'echo' },
    { name: 'udp-quiet', listen: 'udp://127.0.0.1:8747', behaviour: 'discard' },
    { name: 'tcp-echo', listen: 'tcp://127.0.0.1:8748', behaviour: 'echo' },
  ],
  apps: [
    { protocol: 'udp/8741-8742', dns: { type: 'CNAME', name: 'game.example.test' }, origin_direct: ['udp://127.0.0.1:8745-8746'] },
    { protocol: 'udp/8743', dns: { type: 'CNAME', name: 'quiet.example.test' }, origin_direct: ['udp://127.0.0.1:8747'] },
    { protocol: 'tcp/8744', dns: { type: 'CNAME', name: 'tcp.example.test' }, origin_direct: ['tcp://127.0.0.1:8748'] },
  ],
};

test('builtin origins: a UDP app in front of a builtin UDP echo origin answers; discard stays silent; TCP still echoes', async () => {
  const config = mustConfig(raw);
  const e = await startEdge(raw);
  const origins = await startBuiltinOrigins(e.net, config.origins, silent);
  try {
    assert.deepEqual(
      origins.listeners.map((l) => `${l.name} ${l.protocol}://${l.host}:${l.port}`),
      ['udp-echo udp://127.0.0.1:8745', 'udp-echo udp://127.0.0.1:8746', 'udp-quiet udp://127.0.0.1:8747', 'tcp-echo tcp://127.0.0.1:8748'],
    );
    assert.equal(await ask(8741, 'ping 1'), 'ping 1', 'edge 8741 → builtin echo 8745 → back through the edge');
    assert.equal(await ask(8742, 'ping 2'), 'ping 2', 'the range maps 8742 → 8746, which echoes too');
    assert.equal(await ask(8743, 'into the void', 300), undefined, 'a discard origin never answers');

    const c = net.connect(8744, '127.0.0.1');
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.end('hello tcp\n');
    await once(c, 'close');
    assert.equal(Buffer.concat(chunks).toString(), 'hello tcp\n');
  } finally {
    await origins.close();
    await e.close();
  }
  // The ports are released on close: binding them again works.
  const again = await startBuiltinOrigins(e.net, config.origins, silent);
  await again.close();
});
