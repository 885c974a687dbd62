/**
 * Admission: what happens to a new connection or flow before any upstream work. One place for the decisions the
 * engines used to make inline: is there an app, must an inbound PROXY header come first (and is its sender
 * trusted), and do the zone's IP Access rules block the client. Pure: data in, data out.
 *
 * A TCP connection is admitted in up to two steps: `admitAtAccept` on the socket's address, then (when an inbound
 * PROXY header is expected) `accessVerdict` on the client the header names; rules never judge the load balancer.
 */
import type { AcceptProxySettings } from '../model/types.ts';
import { isTrustedSource } from './cidr.ts';
import { decide, type AccessDecision, type CompiledAccessRules } from './access-rules.ts';
import type { GeoLookup } from './geo.ts';

/**
 * At accept, on the socket's address:
 * - `no_app`: no app serves the edge port;
 * - `expect_proxy`: `edge.accept_proxy` is on and trusts the sender; access rules wait for the header's client;
 * - `untrusted`: `edge.accept_proxy` is on and the sender is not in its trusted list;
 * - `check_access`: no PROXY header expected; apply the access rules to the socket's address now.
 */
export type AcceptVerdict = 'no_app' | 'expect_proxy' | 'untrusted' | 'check_access';

export function admitAtAccept(hasApp: boolean, acceptProxy: AcceptProxySettings | undefined, senderIp: string): AcceptVerdict {
  if (!hasApp) return 'no_app';
  if (!acceptProxy) return 'check_access';
  return isTrustedSource(acceptProxy.trusted, senderIp) ? 'expect_proxy' : 'untrusted';
}

export interface AccessVerdict {
  /** The client's country (ISO 3166-1 alpha-2), '' without geo data. */
  readonly country: string;
  /** The client's AS number, 0 without ASN data. */
  readonly asn: number;
  /** The rules' decision; undefined when the app has `ip_firewall` off or the zone has no rules (nothing decided). */
  readonly decision: AccessDecision | undefined;
  /** True when the decision is `block`. */
  readonly blocked: boolean;
}

/** Looks the client up (country, ASN) and, for an app with `ip_firewall`, applies the zone's rules. */
export function accessVerdict(ipFirewall: boolean, rules: CompiledAccessRules, geo: GeoLookup, ip: string): AccessVerdict {
  const country = geo.country(ip) ?? '';
  const asn = geo.asn(ip)?.asn;
  if (!ipFirewall || rules.size === 0) return { country, asn: asn ?? 0, decision: undefined, blocked: false };
  const decision = decide(rules, { ip, country: country || undefined, asn });
  return { country, asn: asn ?? 0, decision, blocked: decision.action === 'block' };
}
