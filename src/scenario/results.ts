/**
 * The report of a run (`ScenarioReport` and its parts, re-exported by `runner.ts`) and how each timeline connection
 * and flow the tracker followed becomes a line of it.
 */
import { Buffer } from 'node:buffer';
import type { AnalyticsRow } from './analytics.ts';
import { type UDP_COUNTER_KEYS } from './schema.ts';
import { type ResolutionTrack } from './resolutions.ts';
import { type FlowTrack, type Track } from './tracker.ts';
import { type StoppedBy } from './world.ts';
import { type DescriptorCounts } from './types.ts';

export type { DescriptorCounts } from './types.ts';

/** One timeline connection as the run saw it, from the client, the edge and the origin. */
export interface ConnectionReport {
  readonly id: string;
  /** The edge that accepted it (null: it never reached one). */
  readonly edge: string | null;
  /** Spectrum Status of its closing event (null: no closing event, e.g. refused by the network or still open). */
  readonly status: number | null;
  readonly event: string | null;
  /** ClientMatchedIpFirewall and ClientCountry of its closing event (null: no closing event; country '' = unknown). */
  readonly matched: string | null;
  readonly country: string | null;
  /** `ip:port` of the origin it was (last) dialled to. */
  readonly origin: string | null;
  /** Bytes the edge read from the client / from the origin. */
  readonly clientBytes: number;
  readonly originBytes: number;
  /** What the client received, as text, cut to 200 characters. */
  readonly received: string;
  readonly receivedBytes: number;
  /** CloseReason of the closing event. */
  readonly reason: string | null;
  /** Accept → origin connected, virtual ms (null: never connected). */
  readonly connectMs: number | null;
  /** The client socket's error code, if it saw one. */
  readonly error: string | null;
  /** The PROXY header the origin decoded, `src`/`dst` as `ip:port`. */
  readonly proxyHeader: { version: 1 | 2; src: string; dst: string } | null;
  /** When the client socket closed, virtual ms (null: still open when the run ended). */
  readonly closedAtMs: number | null;
  /** ErrorCode of the closing event ('' none; null: no closing event). */
  readonly code: string | null;
  /** The edge event's TLS fields (null: no closing event or tls off). */
  readonly tls: Readonly<Record<string, string>> | null;
  /** The client's handshake: version and cipher, or the failure it saw (null: no TLS). */
  readonly clientTls: { protocol: string; cipher: string } | { failure: string } | null;
}

/** One timeline UDP flow (a `datagram` id: one client socket) as the run saw it. */
export interface FlowReport {
  readonly id: string;
  /** The edge that accepted it (null: no datagram reached an edge). */
  readonly edge: string | null;
  /** Flows the edge opened for this client socket / closed (a client that sends after expiry opens another). */
  readonly edgeFlows: number;
  readonly edgeFlowsClosed: number;
  /** The last closing event's Status, Event, CloseReason (null: none closed). */
  readonly status: number | null;
  readonly event: string | null;
  readonly reason: string | null;
  /** `ip:port` of the origin the edge sent to. */
  readonly origin: string | null;
  /** ClientPackets / OriginPackets / ClientBytes / OriginBytes of the last closing event. */
  readonly clientPackets: number;
  readonly originPackets: number;
  readonly clientBytes: number;
  readonly originBytes: number;
  /** Datagrams the client sent. */
  readonly sentDatagrams: number;
  /** Datagrams and payload bytes the client received. */
  readonly receivedDatagrams: number;
  readonly receivedBytes: number;
  /** The first received payloads as text (at most 50, each cut to 200 characters). */
  readonly received: readonly string[];
  /** Received datagrams whose payload this flow never sent. */
  readonly receivedForeign: number;
  /** Datagrams the origin received on this flow, and how many of them began with a PROXY v2 signature. */
  readonly originDatagrams: number;
  readonly proxyHeaders: number;
  /** The client address the origin decoded (SPP, or PROXY v2 on a flow's first datagram), `ip:port`. */
  readonly originClient: string | null;
  /** The client socket's error (`EHOSTDOWN`: its host was down; a bind error code). */
  readonly error: string | null;
}

/** The UDP engines' counters (`udp_` prefix dropped), summed over every edge incarnation. */
export type UdpCounters = Readonly<Record<(typeof UDP_COUNTER_KEYS)[number], number>>;

/** A failed expectation: `path` is a JSON pointer into the scenario (the expectation or the step). */
export interface ExpectationFailure {
  readonly path: string;
  readonly expected: unknown;
  readonly actual: unknown;
}

/** Records a failed expectation (or a step or configuration that failed) at a JSON pointer into the scenario. */
export type Fail = (path: string, expected: unknown, actual: unknown) => void;

/** What one `api` step did on one edge: the app id it wrote, or the code it was refused with. */
export interface ApiOutcome {
  /** The step's index in the timeline, and its virtual time. */
  readonly step: number;
  readonly at: number;
  readonly edge: string;
  readonly op: 'create' | 'update' | 'delete' | 'rotate';
  readonly ref: string;
  /** The app's id (a create's new id; null when no app has that ref on this edge). */
  readonly id: string | null;
  /** null: the write was applied. Else the code it was refused with (EHOSTDOWN: the edge was down). */
  readonly code: string | null;
  /** The refusal's message (null when applied). */
  readonly message: string | null;
  /** A rotation that was applied: the app's addresses after it (present only then). */
  readonly ips?: readonly string[];
}

/** One `resolve` step's query and answer. */
export interface ResolutionReport {
  readonly id: string;
  readonly client: string;
  readonly name: string;
  readonly type: 'A' | 'AAAA';
  /** `IP:PORT` asked. */
  readonly server: string;
  /** The transport of the last exchange (`tcp` after a truncated UDP answer, or with `tcp: true`). */
  readonly transport: 'udp' | 'tcp';
  readonly truncated: boolean;
  /** When the query left and when the answer came, virtual ms (null: no answer). */
  readonly sentAtMs: number;
  readonly answeredAtMs: number | null;
  /** The answer's rcode (null: no answer). */
  readonly rcode: string | null;
  /** The A or AAAA records answered, in answer order. */
  readonly addresses: readonly string[];
  /** The smallest TTL of those records, seconds (null: none). */
  readonly ttl: number | null;
  /** Why there was no answer (ETIMEOUT, EHOSTDOWN, a TCP socket error); null when there was one. */
  readonly error: string | null;
  /** The connection and flow ids that dialled its answer (`resolved`), in the order they did. */
  readonly dialledBy: readonly string[];
}

export interface ScenarioReport {
  readonly name: string;
  readonly seed: number;
  /** Virtual time when the run ended, ms. */
  readonly virtualMs: number;
  /** Wall time the run took, ms (the only non-deterministic field). */
  readonly wallMs: number;
  /** Simulator events fired (timers, packet arrivals, application callbacks). */
  readonly steps: number;
  /** Why the run ended: nothing left to do, `max_time_ms` reached, or the step budget spent. */
  readonly stoppedBy: StoppedBy;
  readonly connections: readonly ConnectionReport[];
  /** Timeline UDP flows, in the order their ids first sent. */
  readonly flows: readonly FlowReport[];
  readonly udp: UdpCounters;
  /** The edges' descriptor guards; present only when an edge has `max_descriptors`. */
  readonly descriptors?: DescriptorCounts;
  /** Each `api` step's outcome on each edge, in the order they ran; present only when an api step ran. */
  readonly api?: readonly ApiOutcome[];
  /** Each `resolve` step's answer, in the order they ran; present only when a resolve step ran. */
  readonly resolutions?: readonly ResolutionReport[];
  /**
   * The bytime table (per minute, app and event: count, bytes each way; src/scenario/analytics.ts); present only
   * when asked (`RunOptions.analytics`, or the scenario has `expect.analytics`).
   */
  readonly analytics?: readonly AnalyticsRow[];
  /** Closing events (TCP and UDP) by Status, over every edge. */
  readonly byStatus: Readonly<Record<string, number>>;
  readonly failures: readonly ExpectationFailure[];
  /** sha256 (hex) of the decision-trace lines, each followed by a newline. */
  readonly traceHash: string;
  readonly traceLines: number;
  /** After the run: no TCP connection in any host's table and no pending timer. */
  readonly quiescent: boolean;
  /** `host local>remote STATE` of each connection left when not quiescent (at most 20). */
  readonly leftOpen: readonly string[];
  readonly pendingTimers: number;
}

const REPORT_RECEIVED_CHARS = 200;
/**
 * Received bytes the report's `received` prefix reads at most (`receivedPrefixDecoded`'s limit; the ASCII path reads
 * REPORT_RECEIVED_CHARS + 1): a connection no expectation compares the whole text of needs no more kept.
 */
export const REPORT_PREFIX_BYTES = REPORT_RECEIVED_CHARS * 4 + 4;
/** Received payloads listed per flow in the report. */
const REPORT_DATAGRAMS = 50;

export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The report's connections, and the whole received text of each connection in `expected` (the ids an expectation
 * names: only those are decoded in full; the report shows a prefix of every one).
 */
export function connectionReports(tracks: Iterable<Track>, expected: ReadonlySet<string>): { connections: ConnectionReport[]; texts: Map<string, string> } {
  const texts = new Map<string, string>();
  const connections: ConnectionReport[] = [...tracks].map((t) => {
    if (expected.has(t.id)) texts.set(t.id, decoder.decode(concat(t.kept, t.keptBytes)));
    return {
      id: t.id,
      edge: t.edge ?? null,
      status: t.status ?? null,
      event: t.event ?? null,
      matched: t.matched ?? null,
      country: t.country ?? null,
      origin: t.origin ?? null,
      clientBytes: t.clientBytes,
      originBytes: t.originBytes,
      received: t.received ?? receivedPrefix(decoder, t.kept, t.keptBytes, lastHead),
      receivedBytes: t.receivedBytes,
      reason: t.reason ?? null,
      connectMs: t.acceptAt !== undefined && t.establishedAt !== undefined ? round3(t.establishedAt - t.acceptAt) : null,
      error: t.error ?? null,
      proxyHeader: t.proxyHeader ?? null,
      closedAtMs: t.closedAt === undefined ? null : round3(t.closedAt),
      code: t.code ?? null,
      tls: t.tls ?? null,
      clientTls: t.clientTls ?? null,
    };
  });
  return { connections, texts };
}

/** The report's flows, and every payload each flow received (the report lists only the first REPORT_DATAGRAMS). */
export function flowReports(tracks: Iterable<FlowTrack>): { flows: FlowReport[]; received: Map<string, readonly string[]> } {
  const received = new Map<string, readonly string[]>();
  const flows: FlowReport[] = [...tracks].map((f) => {
    received.set(f.id, f.received);
    return {
      id: f.id,
      edge: f.edge ?? null,
      edgeFlows: f.edgeFlows,
      edgeFlowsClosed: f.edgeFlowsClosed,
      status: f.status ?? null,
      event: f.event ?? null,
      reason: f.reason ?? null,
      origin: f.origin ?? null,
      clientPackets: f.clientPackets,
      originPackets: f.originPackets,
      clientBytes: f.clientBytes,
      originBytes: f.originBytes,
      sentDatagrams: f.sentDatagrams,
      receivedDatagrams: f.receivedDatagrams,
      receivedBytes: f.receivedBytes,
      received: f.received.slice(0, REPORT_DATAGRAMS).map((t) => (t.length > REPORT_RECEIVED_CHARS ? `${t.slice(0, REPORT_RECEIVED_CHARS)}…` : t)),
      receivedForeign: f.receivedForeign,
      originDatagrams: f.originDatagrams,
      proxyHeaders: f.proxyHeaders,
      originClient: f.originClient ?? null,
      error: f.error ?? null,
    };
  });
  return { flows, received };
}

/** The report's resolutions. */
export function resolutionReports(tracks: Iterable<ResolutionTrack>): ResolutionReport[] {
  return [...tracks].map((t) => ({
    id: t.id,
    client: t.client,
    name: t.name,
    type: t.type,
    server: t.server,
    transport: t.transport,
    truncated: t.truncated,
    sentAtMs: round3(t.sentAt),
    answeredAtMs: t.answeredAt === undefined ? null : round3(t.answeredAt),
    rcode: t.rcode ?? null,
    addresses: t.addresses,
    ttl: t.ttl ?? null,
    error: t.error ?? null,
    dialledBy: t.dialledBy,
  }));
}

/** Counts by Status, in numeric order of the statuses. */
export function sortedCounts(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => Number(a) - Number(b)));
}

/**
 * The report's `received`: the text's first REPORT_RECEIVED_CHARS UTF-16 units, then `…` if there is more. Decoding
 * the first 4 units' worth of bytes per unit (plus 4) gives the same prefix as decoding everything: every 3 bytes
 * yield at least one unit, and only an incomplete sequence at the cut (≤ 3 bytes) can decode differently.
 * `last`: the previous connection's ASCII head, whose string is returned again when this head has the same bytes
 * (a load's connections mostly receive the same bytes: one string for all of them, not one each).
 */
function receivedPrefix(decoder: { decode(bytes: Uint8Array): string }, kept: readonly Uint8Array[], keptBytes: number, last: PrefixMemo): string {
  // Most connections receive ASCII: when the first REPORT_RECEIVED_CHARS + 1 bytes (all, if fewer) are ASCII, they are
  // the text's first units one for one, so the prefix is those bytes, and `…` follows when there are more.
  const head = keptBytes <= REPORT_RECEIVED_CHARS ? keptBytes : REPORT_RECEIVED_CHARS + 1;
  let same = last.len === head;
  // The common case in one native comparison: the first chunk holds the whole head, with the previous head's bytes.
  const first = kept[0];
  if (same && first !== undefined && first.byteLength >= head && asciiHeadBytes.compare(first, 0, head, 0, head) === 0) return last.text;
  let at = 0;
  for (let i = 0; i < kept.length && at < head; i++) {
    const c = kept[i]!;
    for (let j = 0; j < c.byteLength && at < head; j++, at++) {
      const b = c[j]!;
      if (b >= 0x80) {
        last.len = -1; // asciiHead now holds part of this text
        return receivedPrefixDecoded(decoder, kept, keptBytes);
      }
      if (same && asciiHead[at] !== b) same = false;
      asciiHead[at] = b;
    }
  }
  if (same) return last.text;
  // ASCII bytes are the same characters in latin1 (and Buffer's latin1 decoding needs no view object).
  const text = keptBytes <= REPORT_RECEIVED_CHARS ? asciiHeadBytes.toString('latin1', 0, keptBytes) : `${asciiHeadBytes.toString('latin1', 0, REPORT_RECEIVED_CHARS)}…`;
  last.len = head;
  last.text = text;
  return text;
}

/** The ASCII head `asciiHead` holds (`len` bytes; -1: none) and its `received` string. */
interface PrefixMemo {
  len: number;
  text: string;
}
const lastHead: PrefixMemo = { len: -1, text: '' };
const decoder = new TextDecoder();

/**
 * The report's `received` of what a connection kept, `kept` (`keptBytes` in all): what `connectionReports` writes for
 * it. A connection that will keep no more bytes (REPORT_PREFIX_BYTES kept) can have it made at once, and its chunks
 * let go.
 */
export function reportReceived(kept: readonly Uint8Array[], keptBytes: number): string {
  return receivedPrefix(decoder, kept, keptBytes, lastHead);
}

/** The first REPORT_RECEIVED_CHARS + 1 received bytes, when ASCII (reused: decoded before the next connection's). */
const asciiHead = new Uint8Array(REPORT_RECEIVED_CHARS + 1);
const asciiHeadBytes = Buffer.from(asciiHead.buffer, asciiHead.byteOffset, asciiHead.byteLength);

/** `receivedPrefix` for text that is not ASCII at its start. */
function receivedPrefixDecoded(decoder: { decode(bytes: Uint8Array): string }, kept: readonly Uint8Array[], keptBytes: number): string {
  const n = keptBytes < REPORT_PREFIX_BYTES ? keptBytes : REPORT_PREFIX_BYTES;
  const bytes = new Uint8Array(n);
  let at = 0;
  for (let i = 0; i < kept.length && at < n; i++) {
    const c = kept[i]!;
    const take = c.byteLength <= n - at ? c : c.subarray(0, n - at);
    bytes.set(take, at);
    at += take.byteLength;
  }
  const text = decoder.decode(bytes);
  return text.length > REPORT_RECEIVED_CHARS ? `${text.slice(0, REPORT_RECEIVED_CHARS)}…` : text;
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
