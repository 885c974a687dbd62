/**
 * The upstream leg: resolve the origin (answers on `resolve$`), dial its addresses in turn (each attempt's result on
 * `socket$`; `UPSTREAM.EXHAUSTED` on `decisions$` when src/core/legs.ts says none is left), abandon a failed or
 * timed-out attempt, and start the splice with the PROXY header in front of the client's bytes.
 */
import type { NetError } from '../net/ports.ts';
import { splice, type SpliceCallbacks, type SpliceSide } from '../net/splice.ts';
import { encodeProxyV1, encodeProxyV2, tlsProxyTlvs, type ProxyAddresses } from '../core/proxy-protocol.ts';
import { spectrumCipherName } from '../core/tls-ciphers.ts';
import { nextDialIndex } from '../core/legs.ts';
import { isRefractError, type ErrorCode } from '../model/errors.ts';
import type { UpstreamTarget } from '../model/types.ts';
import { DEAD_UP, EV, type ConnRecord, type Endpoint, type TcpEnv } from './tcp-env.ts';

const EMPTY_PREFIX: Uint8Array[] = [];

/** Entry of `resolving`. */
export function resolveOrigin(env: TcpEnv, r: ConnRecord): void {
  let res: readonly UpstreamTarget[] | Promise<readonly UpstreamTarget[]>;
  try {
    res = env.deps.targets(r.app!, r.edge.port);
  } catch (e) {
    resolveFailed(env, r, e);
    return;
  }
  if (Array.isArray(res)) {
    resolved(env, r, res as readonly UpstreamTarget[]);
    return;
  }
  (res as Promise<readonly UpstreamTarget[]>).then(
    (t) => resolved(env, r, t),
    (e: unknown) => resolveFailed(env, r, e),
  );
}

function resolved(env: TcpEnv, r: ConnRecord, targets: readonly UpstreamTarget[]): void {
  r.targets = targets;
  if (env.tracing) env.record({ t: env.deps.clock.now(), node: r.settings.id, app: r.app?.id ?? '', conn: r.id, event: 'resolved', targets: targets.map((t) => `${t.host}:${t.port}`) });
  env.inputs.resolve$.signal(r, EV.RESOLVED);
}

function resolveFailed(env: TcpEnv, r: ConnRecord, e: unknown): void {
  env.stats.upstream_cx_resolve_fail++;
  const code: ErrorCode = isRefractError(e) ? e.code : 'E_UPSTREAM_RESOLVE_FAILED';
  const detail = e instanceof Error ? e.message : String(e);
  env.lineOf(r, 'warn', 'origin.resolve_failed')?.warn({ err: e, code }, 'origin resolution failed');
  env.inputs.resolve$.signal(r, { type: 'ORIGIN.RESOLVE_FAILED', code, detail });
}

/** Entry of `connecting` (re-entered per attempt): dials the next address, or says none is left. */
export function dialNext(env: TcpEnv, r: ConnRecord): void {
  const i = nextDialIndex(r.attempt, r.targets.length, r.settings.maxConnectAttempts);
  if (i < 0) {
    env.inputs.decisions$.signal(r, EV.EXHAUSTED);
    return;
  }
  const t = r.targets[i]!;
  r.attempt = i + 1;
  r.current = t;
  env.stats.upstream_cx_total++;
  if (env.tracing) env.record({ t: env.deps.clock.now(), node: r.settings.id, app: r.app?.id ?? '', conn: r.id, event: 'dial', upstream: `${t.host}:${t.port}`, attempt: r.attempt });
  const up = env.deps.net.connectTcp({ host: t.host, port: t.port });
  r.up = up;
  up.setHandlers(new UpWatch(env, r));
}

/** A dial's handlers until the splice takes the Conn over (one object per attempt, its callbacks methods). */
class UpWatch {
  readonly #env: TcpEnv;
  readonly #r: ConnRecord;
  constructor(env: TcpEnv, r: ConnRecord) {
    this.#env = env;
    this.#r = r;
  }
  connect(): void {
    this.#env.inputs.socket$.signal(this.#r, EV.UP_CONNECTED);
  }
  error(error: NetError): void {
    this.#env.inputs.socket$.signal(this.#r, { type: 'UPSTREAM.FAILED', error });
  }
}

/** The attempt in flight failed (`err`) or timed out: count it, close its socket, log it. */
export function abandonAttempt(env: TcpEnv, r: ConnRecord, err: NetError | undefined, timedOut: boolean): void {
  if (timedOut) env.stats.upstream_cx_connect_timeout++;
  else env.stats.upstream_cx_connect_fail++;
  r.lastError = err;
  r.lastErrorWasTimeout = timedOut;
  const up = r.up;
  r.up = undefined;
  if (up) {
    up.setHandlers(DEAD_UP);
    up.destroy();
  }
  const t = r.current;
  env.trace(r, 'dial_failed', { upstream: t ? `${t.host}:${t.port}` : '', code: timedOut ? 'ETIMEDOUT' : (err?.code ?? '') });
  const fields = { upstream: t && `${t.host}:${t.port}`, code: timedOut ? 'ETIMEDOUT' : err?.code, attempt: r.attempt };
  // Out of descriptors: the real network logs one line per episode (src/net/node/descriptors.ts), not one per connection.
  if (err?.code === 'EMFILE' || err?.code === 'ENFILE') env.logOf(r).debug(fields, 'origin connect failed: out of file descriptors');
  else env.lineOf(r, 'info', timedOut ? 'origin.connect_timeout' : 'origin.connect_failed')?.info(fields, timedOut ? 'origin connect timed out' : 'origin connect failed');
}

/** PROXY v1/v2 need one family for both addresses: an IPv4 side becomes IPv4-mapped IPv6 when the other is IPv6. */
function proxyAddresses(src: Endpoint, dst: Endpoint): ProxyAddresses {
  if (src.family === dst.family) {
    return { family: src.family, src: { address: src.address, port: src.port }, dst: { address: dst.address, port: dst.port } };
  }
  const v6 = (a: Endpoint): string => (a.family === 'IPv4' ? `::ffff:${a.address}` : a.address);
  return { family: 'IPv6', src: { address: v6(src), port: src.port }, dst: { address: v6(dst), port: dst.port } };
}

/** The PROXY header for the origin (undefined when the app sends none). */
export function proxyHeaderFor(r: ConnRecord): Uint8Array | undefined {
  const app = r.app!;
  if (app.proxyProtocol !== 'v1' && app.proxyProtocol !== 'v2') return undefined;
  const a = proxyAddresses(r.client, r.proxyDst);
  if (app.proxyProtocol === 'v1') return encodeProxyV1(a);
  const ct = r.clientTls;
  const tlvs = app.proxyProtocolTlvs && ct ? tlsProxyTlvs({ version: ct.protocol, cipher: spectrumCipherName(ct.cipher), sni: ct.servername }) : undefined;
  return encodeProxyV2(a, tlvs ? { transport: 'stream', tlvs } : { transport: 'stream' });
}

/** Entry of `established`: the PROXY header (unless already sent before origin TLS), then bytes both ways. */
export function startSplice(env: TcpEnv, r: ConnRecord): void {
  const up = r.up!;
  r.connectedEpoch = env.deps.clock.epochMs();
  const app = r.app!;
  let prefix = r.prefix ?? EMPTY_PREFIX;
  const header = r.headerSent ? undefined : proxyHeaderFor(r);
  if (header) prefix = [header, ...prefix];
  const idle = app.idleTimeoutMs ?? r.settings.idleTimeoutMs;
  if (env.tracing) {
    env.record({ t: env.deps.clock.now(), node: r.settings.id, app: app.id, conn: r.id, event: 'established', upstream: `${r.current!.host}:${r.current!.port}`, proxy_protocol: app.proxyProtocol });
  }
  r.splice = splice(r.down, up, { clock: env.deps.clock, idleTimeoutMs: idle, upstreamPrefix: prefix, downstreamEnded: r.downEnded }, new SpliceEvents(env, r));
  r.prefix = undefined;
}

/** What the splice reports, as the machine's input (one object per connection, its callbacks methods). */
class SpliceEvents implements SpliceCallbacks {
  readonly #env: TcpEnv;
  readonly #r: ConnRecord;
  constructor(env: TcpEnv, r: ConnRecord) {
    this.#env = env;
    this.#r = r;
  }
  c2sEnd(): void {
    this.#env.trace(this.#r, 'c2s_end');
    this.#env.inputs.socket$.signal(this.#r, EV.C2S_END);
  }
  s2cEnd(): void {
    this.#env.trace(this.#r, 's2c_end');
    this.#env.inputs.socket$.signal(this.#r, EV.S2C_END);
  }
  error(side: SpliceSide, error: NetError): void {
    this.#env.inputs.socket$.signal(this.#r, { type: 'SPLICE.ERROR', side, error });
  }
  idle(): void {
    this.#env.inputs.socket$.signal(this.#r, EV.IDLE);
  }
  closed(): void {
    this.#env.inputs.socket$.signal(this.#r, EV.CLOSED);
  }
}
