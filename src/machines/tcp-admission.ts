/**
 * Admission of a TCP connection (the `classify` action, and the access check after an inbound PROXY header):
 * asks the classifiers of src/core/admission.ts and turns their verdicts into machine events on `decisions$`.
 */
import { accessVerdict, admitAtAccept } from '../core/admission.ts';
import { EV, type ConnRecord, type TcpEnv } from './tcp-env.ts';

/** Entry of `accepted`: no app, untrusted PROXY sender, PROXY header expected, blocked, or routed. */
export function classify(env: TcpEnv, r: ConnRecord): void {
  // Until the splice starts, a client that vanishes must still end the connection (and cancel any dial).
  r.down.setHandlers(env.downWatch(r));
  const decisions$ = env.inputs.decisions$;
  const verdict = admitAtAccept(r.app !== undefined, r.settings.acceptProxy, r.client.address);
  switch (verdict) {
    case 'no_app':
      env.stats.downstream_cx_no_app++;
      decisions$.signal(r, EV.NO_APP);
      return;
    case 'untrusted':
      env.stats.downstream_cx_proxy_refused++;
      decisions$.signal(r, EV.PROXY_UNTRUSTED);
      return;
    case 'expect_proxy':
      decisions$.signal(r, EV.PROXY_EXPECTED);
      return;
    case 'check_access':
      // Access rules run before any upstream work, on the socket's address (no load balancer in front).
      if (blockedByRules(env, r)) {
        decisions$.signal(r, EV.FILTERED);
        return;
      }
      env.announce(r);
      decisions$.signal(r, EV.ROUTED);
      return;
  }
}

/**
 * Looks the client (`r.client`: the socket's address, or the one an inbound PROXY header named) up and, for apps
 * with ip_firewall, applies the current rules of its zone (node-wide rules included). Records country, ASN and the matching rule kind; true when
 * a rule blocks the client.
 */
export function blockedByRules(env: TcpEnv, r: ConnRecord): boolean {
  const { rules, geo } = env.deps.access(r.app);
  const v = accessVerdict(r.app?.ipFirewall ?? false, rules, geo, r.client.address);
  r.country = v.country;
  r.asn = v.asn;
  const d = v.decision;
  if (d) {
    r.matched = d.matched; // UNKNOWN when no rule matched
    if (v.blocked) env.trace(r, 'filtered', { matched: d.matched, rule: d.ruleId ?? '' });
  }
  return v.blocked;
}
