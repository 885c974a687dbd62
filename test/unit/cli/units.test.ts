/**
 * The CLI's pieces without a process: flag errors and suggestions, the access-log line, start-error wording,
 * TLS error explanations, the PID file and the logger's error serializer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { didYouMean, editDistance, flagProblem, parseCommand, refractVersion } from '../../../src/cli/args.ts';
import { accessLogJson, accessLogLine, accessLogText, AppNames, defaultAccessLog } from '../../../src/cli/access-log.ts';
import { explainConnectError } from '../../../src/cli/connect.ts';
import { claimPidFile } from '../../../src/cli/pid-file.ts';
import { describeStartError } from '../../../src/cli/serve.ts';
import { createLogger } from '../../../src/log.ts';
import { RefractError } from '../../../src/model/errors.ts';
import { validateConfig } from '../../../src/model/config.ts';
import type { RefractConfig } from '../../../src/model/types.ts';
import { NO_TLS_FIELDS, type SpectrumEvent } from '../../../src/streams/events.ts';

function capture(): { io: { out: (t: string) => void; err: (t: string) => void }; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t) => void out.push(t), err: (t) => void err.push(t) }, out, err };
}

void describe('flags', () => {
  const options = { config: { type: 'string', short: 'c' }, 'no-watch': { type: 'boolean' } } as const;

  void it('suggests the command or flag a typo was meant to be', () => {
    assert.equal(editDistance('serv', 'serve'), 1);
    assert.equal(didYouMean('serv', ['serve', 'validate', 'sim']), 'serve');
    assert.equal(didYouMean('valdiate', ['serve', 'validate', 'sim']), 'validate');
    assert.equal(didYouMean('val', ['serve', 'validate', 'sim']), 'validate');
    assert.equal(didYouMean('xyzzy', ['serve', 'validate', 'sim']), undefined);
  });

  void it('turns parseArgs errors into one line naming the flag', () => {
    const problem = (args: string[]): string => {
      try {
        parseArgs({ args, options, allowPositionals: true, strict: true });
      } catch (e) {
        return flagProblem(e, options);
      }
      return 'no error';
    };
    assert.equal(problem(['--confg', 'x']), 'unknown flag --confg (did you mean --config?)');
    assert.equal(problem(['--zzz=1']), 'unknown flag --zzz');
    assert.equal(problem(['--config']), '--config needs a value');
    assert.equal(problem(['-c']), '--config needs a value');
    assert.equal(problem(['--no-watch=yes']), '--no-watch takes no value');
  });

  void it('parseCommand: --help prints the usage on stdout (0); a bad flag one line plus the usage on stderr (2)', () => {
    const h = capture();
    assert.deepEqual(parseCommand('x', ['--help'], options, 'USAGE', h.io), { ok: false, code: 0 });
    assert.deepEqual(h.out, ['USAGE\n']);
    const b = capture();
    assert.deepEqual(parseCommand('x', ['--bogus'], options, 'USAGE', b.io), { ok: false, code: 2 });
    assert.equal(b.err.join(''), 'refract x: unknown flag --bogus\n\nUSAGE\n');
    const ok = parseCommand('x', ['-c', 'f.yaml', 'extra'], options, 'USAGE', capture().io);
    assert.ok(ok.ok);
    assert.equal(ok.values.config, 'f.yaml');
    assert.deepEqual(ok.positionals, ['extra']);
  });

  void it('reads the version from package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(refractVersion(), pkg.version);
  });
});

const EVENT: SpectrumEvent = {
  Event: 'disconnect',
  Timestamp: '2025-01-02T10:00:00.000Z',
  Application: 'web',
  ApplicationName: 'web.example.test',
  ClientIP: '192.0.2.7',
  ClientPort: 50312,
  ClientProto: 'tcp',
  ClientBytes: 34,
  OriginBytes: 12_345,
  OriginIP: '2001:db8::1',
  OriginPort: 8080,
  OriginProto: 'tcp',
  OriginTlsMode: 'off',
  ...NO_TLS_FIELDS,
  ProxyProtocol: 'off',
  IpFirewall: false,
  ClientMatchedIpFirewall: 'UNKNOWN',
  ClientCountry: '',
  ClientAsn: 0,
  Status: 200,
  ConnectTimestamp: '2025-01-02T10:00:00.000Z',
  DisconnectTimestamp: '2025-01-02T10:00:00.012Z',
  ColoCode: 'edge-1',
  ConnectionID: '7',
  EdgeIP: '127.0.0.1',
  EdgePort: 7700,
  DurationMs: 12.4,
  CloseReason: 'normal',
  ErrorCode: '',
};

void describe('access log', () => {
  void it('text: time, app name and id, client → edge → origin, status, reason, bytes each way, duration', () => {
    assert.equal(
      accessLogText(EVENT, 'web.example.test'),
      '2025-01-02T10:00:00.012Z web.example.test [web] tcp 192.0.2.7:50312 → 127.0.0.1:7700 → [2001:db8::1]:8080 200 normal, 34 B in, 12.3 kB out, 12 ms',
    );
    const refused = { ...EVENT, Event: 'originError' as const, Status: 521, CloseReason: 'connect_refused' as const, ErrorCode: 'E_ORIGIN_REFUSED', OriginBytes: 0 };
    assert.match(accessLogText(refused, undefined), / web tcp .* 521 connect_refused E_ORIGIN_REFUSED, 34 B in, 0 B out, 12 ms$/);
  });

  void it('json: one object with the same facts', () => {
    assert.deepEqual(JSON.parse(accessLogJson(EVENT, 'web.example.test')), {
      time: '2025-01-02T10:00:00.012Z',
      app: 'web',
      app_name: 'web.example.test',
      protocol: 'tcp',
      client_ip: '192.0.2.7',
      client_port: 50312,
      edge_ip: '127.0.0.1',
      edge_port: 7700,
      origin_ip: '2001:db8::1',
      origin_port: 8080,
      event: 'disconnect',
      status: 200,
      close_reason: 'normal',
      error_code: '',
      bytes_in: 34,
      bytes_out: 12_345,
      duration_ms: 12.4,
      connection_id: '7',
    });
    const udp = JSON.parse(accessLogJson({ ...EVENT, ClientProto: 'udp', ClientPackets: 2, OriginPackets: 1 }, 'dns')) as Record<string, unknown>;
    assert.equal(udp['packets_in'], 2);
    assert.equal(udp['packets_out'], 1);
    // The keys in the documented order: the datagram counts after the byte counts, a TCP line without them.
    assert.deepEqual(Object.keys(udp).slice(-6), ['bytes_in', 'bytes_out', 'packets_in', 'packets_out', 'duration_ms', 'connection_id']);
    assert.ok(!accessLogJson(EVENT, 'web.example.test').includes('packets'));
    const noOrigin = JSON.parse(accessLogJson({ ...EVENT, ClientProto: 'udp', ClientPackets: 3 }, 'dns')) as Record<string, unknown>;
    assert.equal(noOrigin['packets_out'], 0);
  });

  void it('app names: looked up in the app list given, and looked up afresh when a new list replaces it', () => {
    const names = new AppNames();
    const first = [{ id: 'a', dns: { name: 'a.example.test' } }];
    assert.equal(names.get(first, 'a'), 'a.example.test');
    assert.equal(names.get(first, 'b'), undefined);
    const second = [{ id: 'b', dns: { name: 'b.example.test' } }, { id: 'a', dns: { name: 'renamed.example.test' } }];
    assert.equal(names.get(second, 'a'), 'renamed.example.test');
    assert.equal(names.get(second, 'b'), 'b.example.test');
    assert.equal(names.get(undefined, 'a'), undefined, 'no running config: no name');
  });

  void it('no line for connect events or when off; default text on a terminal, json on a pipe, off when events go to stdout', () => {
    assert.equal(accessLogLine({ ...EVENT, Event: 'connect' }, 'x', 'text'), undefined);
    assert.equal(accessLogLine(EVENT, 'x', 'off'), undefined);
    assert.equal(defaultAccessLog(true, undefined), 'text');
    assert.equal(defaultAccessLog(false, undefined), 'json');
    assert.equal(defaultAccessLog(false, 'events.jsonl'), 'json');
    assert.equal(defaultAccessLog(true, 'stdout'), 'off');
  });
});

void describe('errors a person reads', () => {
  const v = validateConfig({
    apps: [{ id: 'web', protocol: 'tcp/7700', dns: { name: 'web.example.test' }, origin_direct: ['tcp://127.0.0.1:8080'] }],
  });
  assert.ok(v.ok);
  const config: RefractConfig = v.config;

  void it('a listen failure names the address, port and app', () => {
    const e = new RefractError('E_LISTEN_ADDRESS_IN_USE', { details: { address: '127.0.0.1', port: 7700, app: 'web', cause: 'EADDRINUSE' } });
    assert.equal(
      describeStartError(e, config),
      'E_LISTEN_ADDRESS_IN_USE: tcp 127.0.0.1:7700 for app web (web.example.test): The edge address and port are already in use by another process. (EADDRINUSE)',
    );
    const o = new RefractError('E_LISTEN_PERMISSION', { message: "builtin origin 'echo' could not listen on ::1:80: …", details: { origin: 'echo', address: '::1', port: 80 } });
    assert.match(describeStartError(o, config), /^E_LISTEN_PERMISSION: \[::1\]:80 for builtin origin 'echo': Not permitted/);
  });

  void it('connect explains certificate errors in words beside the code', () => {
    assert.match(explainConnectError({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', message: 'unable to verify the first certificate' }), /^UNABLE_TO_VERIFY_LEAF_SIGNATURE: the server's certificate is not signed by a CA you trust: pass --ca/);
    assert.match(explainConnectError({ code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: '' }), /--servername/);
    assert.equal(explainConnectError({ code: 'E_SOMETHING', message: 'odd' }), 'E_SOMETHING: odd');
  });

  void it('log lines carry no stack below debug, and do at debug', () => {
    const lines = (level: string): Array<Record<string, Record<string, unknown>>> => {
      const out: string[] = [];
      const dest = new Writable({ write: (c: Buffer, _e, cb) => (out.push(c.toString()), cb()) });
      const log = createLogger({ level, destination: dest as unknown as Parameters<typeof createLogger>[0]['destination'] & object });
      log.error({ err: new RefractError('E_LISTEN_FAILED', { details: { port: 1 }, cause: new Error('inner') }) }, 'failed');
      log.error({ err: new AggregateError([new Error('a')], 'many') }, 'failed');
      return out.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>);
    };
    const [info, agg] = lines('info');
    assert.equal(info!['err']!['code'], 'E_LISTEN_FAILED');
    assert.deepEqual(info!['err']!['details'], { port: 1 });
    assert.equal(info!['err']!['stack'], undefined);
    assert.equal((agg!['err']!['aggregateErrors'] as Array<Record<string, unknown>>)[0]!['stack'], undefined);
    assert.match(String(lines('debug')[0]!['err']!['stack']), /RefractError/);
  });
});

void describe('pid file', () => {
  void it('writes the PID, refuses one naming a running process, replaces a stale one, removes only its own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'refract-pid-'));
    try {
      const file = join(dir, 'refract.pid');
      const mine = claimPidFile(file, 2_000_000_001);
      assert.equal(readFileSync(file, 'utf8'), '2000000001\n');
      mine.remove();
      assert.equal(existsSync(file), false);

      writeFileSync(file, `${process.pid}\n`); // a running process (this one)
      assert.throws(() => claimPidFile(file, 2_000_000_002), (e: unknown) => e instanceof RefractError && e.code === 'E_PID_FILE_IN_USE' && e.details?.['pid'] === process.pid);

      writeFileSync(file, '2000000003\n'); // no such process
      const again = claimPidFile(file, 2_000_000_004);
      writeFileSync(file, '2000000005\n'); // someone else's now
      again.remove();
      assert.equal(readFileSync(file, 'utf8'), '2000000005\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
