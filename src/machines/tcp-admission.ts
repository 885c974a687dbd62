/**
 * Admission of a TCP connection (the `classify` action, and the access check after an inbound PROXY header):
 * asks the classifiers of src/core/admission.ts and turns their verdicts into machine events on `decisions$`.
 */
import { accessVerdict, admitAtAccept } from '../core/admission.ts';
import { admitClient, capVerdict, releaseClient } from '../core/client-limits.ts';
import type { TcpConnEvent } from './tcp-connection.machine.ts';
import { EV, type ConnRecord, type TcpEnv } from './tcp-env.ts';

const LIMITED = {
  client_connections: { type: 'CONN.LIMITED', outcome: 'client_connections' },
  client_rate: { type: 'CONN.LIMITED', outcome: 'client_rate' },
  node_cap: { type: 'CONN.LIMITED', outcome: 'node_cap' },
  app_cap: { type: 'CONN.LIMITED', outcome: 'app_cap' },
} as const satisfies Record<string, TcpConnEvent>;

/**
 * Entry of `accepted`: no app, over `max_connections` (node or app), untrusted PROXY sender, PROXY header
 * expected, blocked, over a per-client limit, or routed.
 */
export function classify(env: TcpEnv, r: ConnRecord): void {
  // Until the splice starts, a client that vanishes must still end the connection (and cancel any dial).
  r.down.setHandlers(env.downWatch(r));
  const decisions$ = env.inputs.decisions$;
  const verdict = admitAtAccept(r.app !== undefined, r.settings.acceptProxy, r.client.address);
  if (verdict !== 'no_app' && !holdCap(env, r)) return;
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
      if (limitedClient(env, r)) return;
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

/**
 * Counts the connection against `edge.max_connections` and its app's `max_connections`, first thing after accept
 * (before any PROXY header, rule or upstream work); past either, signals CONN.LIMITED and returns false.
 */
function holdCap(env: TcpEnv, r: ConnRecord): boolean {
  const app = r.app!;
  const cap = capVerdict(env.capOpen, r.settings.maxConnections, env.capOpenByApp.get(app.id) ?? 0, app.maxConnections);
  if (cap !== 'ok') {
    env.inputs.decisions$.signal(r, LIMITED[cap]);
    return false;
  }
  env.capOpen++;
  env.capOpenByApp.set(app.id, (env.capOpenByApp.get(app.id) ?? 0) + 1);
  r.capHeld = true;
  return true;
}

/**
 * Applies the per-client limits (the node's `edge.limits` and the app's `limits`) to `r.client`: the socket's
 * address, or the client an inbound PROXY header named. Over a limit, signals CONN.LIMITED and returns true;
 * otherwise the connection is counted until it closes (`releaseLimits`).
 */
export function limitedClient(env: TcpEnv, r: ConnRecord): boolean {
  const app = r.app!;
  const res = admitClient(env.limiter, r.settings.limits, app.limits, app.id, r.client.address, env.deps.clock.now());
  if (res.verdict === 'ok') {
    r.limitHold = res.hold;
    return false;
  }
  env.inputs.decisions$.signal(r, res.verdict === 'connections' ? LIMITED.client_connections : LIMITED.client_rate);
  return true;
}

/** At close: gives back the connection's `max_connections` slot and its per-client counts. */
export function releaseLimits(env: TcpEnv, r: ConnRecord): void {
  if (r.capHeld) {
    r.capHeld = false;
    env.capOpen--;
    const id = r.app!.id;
    const left = (env.capOpenByApp.get(id) ?? 1) - 1;
    if (left > 0) env.capOpenByApp.set(id, left);
    else env.capOpenByApp.delete(id);
  }
  if (r.limitHold) {
    releaseClient(env.limiter, r.limitHold, env.deps.clock.now());
    r.limitHold = undefined;
  }
}
