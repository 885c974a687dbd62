/**
 * The lifecycle of one proxied TCP connection, as an XState v5 machine.
 *
 * The machine sees lifecycle only (DESIGN rule 1): routing, inbound PROXY header, origin resolution, each connect
 * attempt, each direction's FIN, errors, idleness, drain. Bytes move in `src/net/splice.ts`, never as events.
 *
 * Contract for the executor (`host.ts`, which refuses a machine that breaks it): no context, no assign, no guards. Per-connection data
 * lives in the record the named actions receive (`tcp-connection.ts`); action implementations here are
 * placeholders, replaced by the executor's `impl` table. Time only through `after` with named delays, whose
 * durations the executor takes per connection (`connectTimeout`, `proxyHeaderTimeout`).
 *
 * ```
 * accepted ──CONN.ROUTED──► clientTls ──TLS.SKIPPED / CLIENT_OK──► resolving ──ORIGIN.RESOLVED──► connecting ⟲
 *    │ └─PROXY.EXPECTED─► readingProxyHeader ─DECODED─┘ │ CLIENT_FAILED     │ RESOLVE_FAILED (531)   │ (next address
 *    │                         │ INVALID / timeout       │ (443/400/540)     │                        │  on refusal/timeout)
 *    │                         │                         │                   │     UPSTREAM.CONNECTED │
 *    └─CONN.NO_APP / PROXY.UNTRUSTED                     │                   │                        ▼
 *                                                        │                   │   originTls ──TLS.SKIPPED / ORIGIN_OK──► established
 *                                                        ▼                   ▼      │ ORIGIN_FAILED (525/526)    (c2s ∥ s2c regions)
 *                                                      closed ◄── EXHAUSTED (521/522/523) ◄── SPLICE.CLOSED / ERROR / IDLE / drain
 * ```
 */
import { setup } from 'xstate';
import type { NetError } from '../net/ports.ts';
import type { SpliceSide } from '../net/splice.ts';
import type { ProxyHeader } from '../core/proxy-protocol.ts';
import type { ErrorCode } from '../model/errors.ts';

export type TcpConnEvent =
  | { type: 'CONN.ROUTED' }
  | { type: 'CONN.NO_APP' }
  | { type: 'CONN.FILTERED' }
  /** Refused by a limit before any upstream work: a per-client limit (after any inbound PROXY header) or a cap. */
  | { type: 'CONN.LIMITED'; outcome: 'client_connections' | 'client_rate' | 'node_cap' | 'app_cap' }
  | { type: 'PROXY.EXPECTED' }
  | { type: 'PROXY.UNTRUSTED' }
  | { type: 'PROXY.DECODED'; header: ProxyHeader; rest: Uint8Array }
  | { type: 'PROXY.INVALID'; code: ErrorCode; detail: string }
  | { type: 'TLS.SKIPPED' }
  | { type: 'TLS.CLIENT_OK' }
  | { type: 'TLS.CLIENT_FAILED' }
  | { type: 'TLS.ORIGIN_OK' }
  | { type: 'TLS.ORIGIN_FAILED' }
  | { type: 'ORIGIN.RESOLVED' }
  | { type: 'ORIGIN.RESOLVE_FAILED'; code: ErrorCode; detail: string }
  | { type: 'UPSTREAM.CONNECTED' }
  | { type: 'UPSTREAM.FAILED'; error: NetError }
  | { type: 'UPSTREAM.EXHAUSTED' }
  | { type: 'DOWNSTREAM.CLOSED'; error?: NetError }
  | { type: 'SPLICE.C2S_END' }
  | { type: 'SPLICE.S2C_END' }
  | { type: 'SPLICE.ERROR'; side: SpliceSide; error: NetError }
  | { type: 'SPLICE.IDLE' }
  | { type: 'SPLICE.CLOSED' }
  | { type: 'CONN.DRAIN_DEADLINE' }
  | { type: 'CONN.ABORT' };

/** Placeholder bodies: the executor substitutes the real implementations by name. */
const todo = (): void => {
  throw new Error('tcpConnection actions run only through MachineHost with an impl table');
};

export const tcpConnectionMachine = setup({
  types: { events: {} as TcpConnEvent },
  actions: {
    classify: todo,
    readProxyHeader: todo,
    recordProxyTimeout: todo,
    recordProxyInvalid: todo,
    recordUntrusted: todo,
    recordNoApp: todo,
    recordFiltered: todo,
    recordLimited: todo,
    startClientTls: todo,
    recordClientTlsFailed: todo,
    startOriginTls: todo,
    recordOriginTlsFailed: todo,
    resolveOrigin: todo,
    recordResolveFailed: todo,
    dialNext: todo,
    recordConnectFailure: todo,
    recordConnectTimeout: todo,
    recordExhausted: todo,
    startSplice: todo,
    recordHalfClose: todo,
    recordSpliceClosed: todo,
    recordSpliceError: todo,
    recordIdle: todo,
    recordClientGone: todo,
    recordDrainDeadline: todo,
    recordAbort: todo,
    finish: todo,
  },
  delays: {
    connectTimeout: 15_000, // 15 s; per connection from app or node settings
    proxyHeaderTimeout: 3_000, // 3 s; HAProxy's spec asks receivers to wait at least this long
  },
}).createMachine({
  id: 'tcpConnection',
  initial: 'accepted',
  on: {
    'CONN.DRAIN_DEADLINE': { target: '.closed', actions: 'recordDrainDeadline' },
    'CONN.ABORT': { target: '.closed', actions: 'recordAbort' },
    // From any state: at accept, after an inbound PROXY header, or when a new rule blocks an open connection.
    'CONN.FILTERED': { target: '.closed', actions: 'recordFiltered' },
    // At accept (max_connections, per-client limits) or after an inbound PROXY header (per-client limits).
    'CONN.LIMITED': { target: '.closed', actions: 'recordLimited' },
  },
  states: {
    accepted: {
      entry: 'classify',
      on: {
        'CONN.ROUTED': 'clientTls',
        'PROXY.EXPECTED': 'readingProxyHeader',
        'PROXY.UNTRUSTED': { target: 'closed', actions: 'recordUntrusted' },
        'CONN.NO_APP': { target: 'closed', actions: 'recordNoApp' },
      },
    },
    readingProxyHeader: {
      entry: 'readProxyHeader',
      after: { proxyHeaderTimeout: { target: 'closed', actions: 'recordProxyTimeout' } },
      on: {
        'PROXY.DECODED': 'clientTls',
        'PROXY.INVALID': { target: 'closed', actions: 'recordProxyInvalid' },
        'DOWNSTREAM.CLOSED': { target: 'closed', actions: 'recordClientGone' },
      },
    },
    // Edge TLS termination (tls flexible/full/strict); apps with tls off pass straight through (TLS.SKIPPED).
    clientTls: {
      entry: 'startClientTls',
      on: {
        'TLS.SKIPPED': 'resolving',
        'TLS.CLIENT_OK': 'resolving',
        'TLS.CLIENT_FAILED': { target: 'closed', actions: 'recordClientTlsFailed' },
        'DOWNSTREAM.CLOSED': { target: 'closed', actions: 'recordClientGone' },
      },
    },
    resolving: {
      entry: 'resolveOrigin',
      on: {
        'ORIGIN.RESOLVED': 'connecting',
        'ORIGIN.RESOLVE_FAILED': { target: 'closed', actions: 'recordResolveFailed' },
        'DOWNSTREAM.CLOSED': { target: 'closed', actions: 'recordClientGone' },
      },
    },
    connecting: {
      entry: 'dialNext',
      after: { connectTimeout: { target: 'connecting', reenter: true, actions: 'recordConnectTimeout' } },
      on: {
        'UPSTREAM.CONNECTED': 'originTls',
        'UPSTREAM.FAILED': { target: 'connecting', reenter: true, actions: 'recordConnectFailure' },
        'UPSTREAM.EXHAUSTED': { target: 'closed', actions: 'recordExhausted' },
        'DOWNSTREAM.CLOSED': { target: 'closed', actions: 'recordClientGone' },
      },
    },
    // TLS to the origin (full, strict); the PROXY header, if any, went out in clear before the ClientHello.
    originTls: {
      entry: 'startOriginTls',
      on: {
        'TLS.SKIPPED': 'established',
        'TLS.ORIGIN_OK': 'established',
        'TLS.ORIGIN_FAILED': { target: 'closed', actions: 'recordOriginTlsFailed' },
        'DOWNSTREAM.CLOSED': { target: 'closed', actions: 'recordClientGone' },
      },
    },
    established: {
      type: 'parallel',
      entry: 'startSplice',
      on: {
        'SPLICE.CLOSED': { target: 'closed', actions: 'recordSpliceClosed' },
        'SPLICE.ERROR': { target: 'closed', actions: 'recordSpliceError' },
        'SPLICE.IDLE': { target: 'closed', actions: 'recordIdle' },
      },
      states: {
        c2s: {
          initial: 'open',
          states: { open: { on: { 'SPLICE.C2S_END': { target: 'ended', actions: 'recordHalfClose' } } }, ended: {} },
        },
        s2c: {
          initial: 'open',
          states: { open: { on: { 'SPLICE.S2C_END': { target: 'ended', actions: 'recordHalfClose' } } }, ended: {} },
        },
      },
    },
    closed: { type: 'final', entry: 'finish' },
  },
});

export type TcpConnActionName = keyof typeof tcpConnectionMachine.implementations.actions;
