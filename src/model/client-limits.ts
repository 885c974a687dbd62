/**
 * The per-client limit keys shared by `edge.limits` and an app's `limits` (docs/configuration.md, "Per-client
 * limits"): their zod schema and their normal form (`ClientLimitSettings`). The limiter itself is
 * src/core/client-limits.ts.
 */
import { z } from 'zod';
import { DEFAULTS } from './defaults.ts';
import type { ClientLimitSettings } from './types.ts';

const LIMIT_FIELDS = {
  per_ip_connections: z.number().int().min(1).max(1_000_000).nullish(),
  per_ip_new_per_second: z.number().min(0.001).max(1_000_000).nullish(),
  per_ip_burst: z.number().int().min(1).max(1_000_000).nullish(),
  ipv6_prefix: z.number().int().min(1).max(128).nullish(),
};

const burstNeedsRate = (v: { per_ip_burst?: number | null | undefined; per_ip_new_per_second?: number | null | undefined }, ctx: z.RefinementCtx): void => {
  if (v.per_ip_burst != null && v.per_ip_new_per_second == null) {
    ctx.addIssue({ code: 'custom', path: ['per_ip_burst'], message: 'per_ip_burst is the bucket of per_ip_new_per_second; set per_ip_new_per_second too' });
  }
};

/** An app's `limits`. */
export const appLimitsSchema = z.strictObject(LIMIT_FIELDS).superRefine(burstNeedsRate);

/** `edge.limits`: the same keys, plus the limiter's memory bound. */
export const edgeLimitsSchema = z
  .strictObject({ ...LIMIT_FIELDS, max_tracked_clients: z.number().int().min(1).max(10_000_000).nullish() })
  .superRefine(burstNeedsRate);

/**
 * The normal form of a `limits` mapping: undefined when it limits nothing (no count, no rate). The burst defaults
 * to one second's worth of the rate (at least 1); `ipv6_prefix` to the node's (for an app) or 64.
 */
export function normaliseLimits(
  v: z.output<typeof appLimitsSchema> | undefined,
  inheritedIpv6Prefix: number = DEFAULTS.limitsIpv6Prefix,
): ClientLimitSettings | undefined {
  if (v == null) return undefined;
  const perIpConnections = v.per_ip_connections ?? undefined;
  const perIpNewPerSecond = v.per_ip_new_per_second ?? undefined;
  if (perIpConnections === undefined && perIpNewPerSecond === undefined) return undefined;
  return {
    perIpConnections,
    perIpNewPerSecond,
    perIpBurst: v.per_ip_burst ?? Math.max(1, Math.ceil(perIpNewPerSecond ?? 1)),
    ipv6Prefix: v.ipv6_prefix ?? inheritedIpv6Prefix,
  };
}
