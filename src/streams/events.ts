/**
 * Spectrum-style connection events (the `spectrum_events` Logpush dataset, docs/events.md),
 * as an RxJS stream. Every app connection produces exactly two: `connect` when it is accepted and routed to an
 * app, then one closing event (`disconnect`, `originError`, `resolveOrigin`, `clientFiltered`) with its Status.
 *
 * The engine calls `EventLog.emit` once per lifecycle step (never per chunk); subscribers are the JSON-lines
 * writer, tests, and (later) analytics.
 */
import { type Observable } from 'rxjs';
import { HotStream } from './hot-stream.ts';
import type { ClientMatchedIpFirewall, ProxyProtocolMode, TlsMode, TlsStatus } from '../model/types.ts';
import type { CloseReason, SpectrumEventName } from '../model/outcome.ts';

export type { CloseReason, SpectrumEventName };

/** ClientTlsProtocol / OriginTlsProtocol values (docs/events.md). */
export type TlsProtocolName = 'unknown' | 'none' | 'SSLv3' | 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface SpectrumEvent {
  Event: SpectrumEventName;
  /** RFC 3339 time of the event. */
  Timestamp: string;
  /** The app id. */
  Application: string;
  /** Refract extension: the app's `dns.name`, so a person can tell apps apart without their opaque ids. */
  ApplicationName: string;
  ClientIP: string;
  ClientPort: number;
  ClientProto: 'tcp' | 'udp';
  ClientBytes: number;
  OriginBytes: number;
  OriginIP: string;
  OriginPort: number;
  OriginProto: 'tcp' | 'udp';
  OriginTlsMode: TlsMode;
  /** Client leg: negotiated version ('none' for tls off), cipher (Spectrum's names; 'UNK' unknown), SNI, status. */
  ClientTlsProtocol: TlsProtocolName;
  ClientTlsCipher: string;
  ClientTlsClientHelloServerName: string;
  ClientTlsStatus: TlsStatus;
  /** Origin leg (full, strict): version, cipher, SHA-256 of the origin certificate ('' unknown), status. */
  OriginTlsProtocol: TlsProtocolName;
  OriginTlsCipher: string;
  OriginTlsFingerprint: string;
  OriginTlsStatus: TlsStatus;
  ProxyProtocol: ProxyProtocolMode;
  IpFirewall: boolean;
  /** Which IP Access rule decided (docs/events.md); UNKNOWN = no match or ip_firewall off. */
  ClientMatchedIpFirewall: ClientMatchedIpFirewall;
  /** Country of the client IP (ISO 3166-1 alpha-2), '' without country data. */
  ClientCountry: string;
  /** AS number of the client IP, 0 without ASN data. */
  ClientAsn: number;
  /** Status (docs/errors.md, "Event status codes"): 0 opened, 200 normal close, 521 refused, 522 connect timeout, 531 resolve failed, … */
  Status: number;
  /** When both legs were established (RFC 3339), or '' if never. */
  ConnectTimestamp: string;
  /** When the connection closed (RFC 3339); '' on `connect`. */
  DisconnectTimestamp: string;
  /** The edge node (ColoCode in Spectrum). */
  ColoCode: string;
  // ── Refract extensions ──
  ConnectionID: string;
  EdgeIP: string;
  EdgePort: number;
  /** Milliseconds from accept to close; 0 on `connect`. */
  DurationMs: number;
  CloseReason: CloseReason | '';
  /** Refract error code behind a non-200 status, or ''. */
  ErrorCode: string;
  /** UDP flows: datagrams from the client / from the origin. */
  ClientPackets?: number;
  OriginPackets?: number;
}

export class EventLog {
  readonly #subject = new HotStream<SpectrumEvent>();
  readonly #closings = new HotStream<SpectrumEvent>();
  /** Hot stream of events; late subscribers see only what comes after they subscribe. */
  readonly events$: Observable<SpectrumEvent> = this.#subject;
  /**
   * The closing events only (every event but `connect`), for subscribers that want nothing else (the access log):
   * while nobody listens to `events$`, the engine then builds no `connect` event at all.
   */
  readonly closings$: Observable<SpectrumEvent> = this.#closings;

  /** False when nobody listens: the engine then skips building events (keeps the connection path cheap). */
  get observed(): boolean {
    return this.#subject.observed || this.#closings.observed;
  }

  /** Whether an event named `name` has a listener (a `connect` has one only on `events$`). */
  observedFor(name: SpectrumEventName): boolean {
    return name === 'connect' ? this.#subject.observed : this.observed;
  }

  emit(e: SpectrumEvent): void {
    if (this.#subject.observed) this.#subject.next(e);
    if (e.Event !== 'connect' && this.#closings.observed) this.#closings.next(e);
  }

  complete(): void {
    this.#subject.complete();
    this.#closings.complete();
  }
}

/** The TLS fields of a connection with no TLS on either leg (tls off, and every UDP flow). */
export const NO_TLS_FIELDS = {
  ClientTlsProtocol: 'none',
  ClientTlsCipher: 'UNK',
  ClientTlsClientHelloServerName: '',
  ClientTlsStatus: 'UNKNOWN',
  OriginTlsProtocol: 'none',
  OriginTlsCipher: 'UNK',
  OriginTlsFingerprint: '',
  OriginTlsStatus: 'UNKNOWN',
} as const satisfies Partial<SpectrumEvent>;

/** RFC 3339 with milliseconds, for event timestamps. */
export function rfc3339(epochMs: number): string {
  // The same text as `new Date(epochMs).toISOString()`, which builds a Date and formats every field each call: the
  // `YYYY-MM-DDTHH:MM:` of the minute is kept (events come in time order), seconds and milliseconds are written here.
  if (!(epochMs >= 0 && epochMs < MAX_FAST_EPOCH_MS)) return new Date(epochMs).toISOString();
  const ms = Math.floor(epochMs); // a Date's time value truncates toward zero
  const minute = Math.floor(ms / 60_000);
  if (minute !== stampMinute) {
    stampMinute = minute;
    stampPrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
  }
  const inMinute = ms - minute * 60_000;
  const sec = Math.floor(inMinute / 1000);
  const milli = inMinute - sec * 1000;
  return `${stampPrefix}${sec < 10 ? '0' : ''}${sec}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** 10000-01-01T00:00:00Z: from there on toISOString writes a six-digit year with a sign. */
const MAX_FAST_EPOCH_MS = 253_402_300_800_000;
/** The minute (epoch ms / 60,000) whose `YYYY-MM-DDTHH:MM:` `stampPrefix` holds. */
let stampMinute = -1;
let stampPrefix = '';

/** Resolvers waiting for a set of live flows or connections to become empty (graceful shutdown). */
export class IdleWaiters {
  #waiters: Array<() => void> = [];

  /** Resolves at once when `size` is 0, else at the next `notify` that finds it 0. */
  wait(size: number): Promise<void> {
    if (size === 0) return Promise.resolve();
    return new Promise((res) => this.#waiters.push(res));
  }

  notify(size: number): void {
    if (size !== 0 || this.#waiters.length === 0) return;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
