/**
 * The one builder of Spectrum connection events (docs/events.md), for TCP connections and UDP flows alike. The
 * engines keep their byte counts as downstream/upstream (bytes that came from the client / from the origin); this
 * is the only place where they take Spectrum's names (ClientBytes, OriginBytes).
 */
import type { Clock } from '../net/ports.ts';
import type { ClientMatchedIpFirewall } from '../core/access-rules.ts';
import type { AppSpec, UpstreamTarget } from '../model/types.ts';
import type { CloseReason, SpectrumEventName } from '../model/outcome.ts';
import { NO_TLS_FIELDS, rfc3339, type SpectrumEvent } from '../streams/events.ts';

/** What an event says about one connection or flow, in the engines' vocabulary. */
export interface EventFacts {
  readonly proto: 'tcp' | 'udp';
  readonly connectionId: string;
  readonly app: AppSpec;
  readonly client: { readonly address: string; readonly port: number };
  readonly edge: { readonly address: string; readonly port: number };
  readonly upstream: UpstreamTarget | undefined;
  /** Bytes that came from the client. */
  readonly bytesDownstream: number;
  /** Bytes that came from the origin. */
  readonly bytesUpstream: number;
  readonly matched: ClientMatchedIpFirewall;
  readonly country: string;
  readonly asn: number;
  /** Clock.now() at accept (durations are measured on the monotonic clock). */
  readonly acceptedAt: number;
  /** Epoch ms when both legs were up; 0 if never. */
  readonly connectedEpoch: number;
  readonly colo: string;
  readonly reason: CloseReason;
  readonly code: string;
  readonly tls: TlsEventFields;
  /** UDP: datagrams from the client / from the origin. */
  readonly packets?: { readonly downstream: number; readonly upstream: number };
}

export type TlsEventFields = Pick<SpectrumEvent, keyof typeof NO_TLS_FIELDS>;

/** The event `name` with `status` for a connection or flow, stamped now. */
export function spectrumEvent(clock: Clock, name: SpectrumEventName, status: number, f: EventFacts): SpectrumEvent {
  const closing = name !== 'connect';
  const now = clock.epochMs();
  // One string for the event's time and, on a closing event, its DisconnectTimestamp (the same instant).
  const stamp = rfc3339(now);
  const tls = f.tls;
  const ev: SpectrumEvent = {
    Event: name,
    Timestamp: stamp,
    Application: f.app.id,
    ApplicationName: f.app.dns.name,
    ClientIP: f.client.address,
    ClientPort: f.client.port,
    ClientProto: f.proto,
    ClientBytes: f.bytesDownstream,
    OriginBytes: f.bytesUpstream,
    OriginIP: f.upstream?.host ?? '',
    OriginPort: f.upstream?.port ?? 0,
    OriginProto: f.proto,
    OriginTlsMode: f.app.tls,
    // The TLS fields one by one, in NO_TLS_FIELDS' order (a spread in the middle of a literal is a slow copy).
    ClientTlsProtocol: tls.ClientTlsProtocol,
    ClientTlsCipher: tls.ClientTlsCipher,
    ClientTlsClientHelloServerName: tls.ClientTlsClientHelloServerName,
    ClientTlsStatus: tls.ClientTlsStatus,
    OriginTlsProtocol: tls.OriginTlsProtocol,
    OriginTlsCipher: tls.OriginTlsCipher,
    OriginTlsFingerprint: tls.OriginTlsFingerprint,
    OriginTlsStatus: tls.OriginTlsStatus,
    ProxyProtocol: f.app.proxyProtocol,
    IpFirewall: f.app.ipFirewall,
    ClientMatchedIpFirewall: f.matched,
    ClientCountry: f.country,
    ClientAsn: f.asn,
    Status: status,
    ConnectTimestamp: f.connectedEpoch ? rfc3339(f.connectedEpoch) : '',
    DisconnectTimestamp: closing ? stamp : '',
    ColoCode: f.colo,
    ConnectionID: f.connectionId,
    EdgeIP: f.edge.address,
    EdgePort: f.edge.port,
    DurationMs: closing ? Math.round((clock.now() - f.acceptedAt) * 1000) / 1000 : 0,
    CloseReason: closing ? f.reason : '',
    ErrorCode: closing ? f.code : '',
  };
  if (f.packets) {
    ev.ClientPackets = f.packets.downstream;
    ev.OriginPackets = f.packets.upstream;
  }
  return ev;
}
