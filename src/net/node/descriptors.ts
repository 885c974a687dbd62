/**
 * File descriptors on a real machine: the process limit (RLIMIT_NOFILE), how many are open, and the descriptor
 * guard (src/net/descriptor-guard.ts) over them (docs/hardening.md, "Overload and descriptors"). The descriptors
 * in use are read from /proc/self/fd (Linux; no native addon).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { DescriptorGuard as PureGuard, type DescriptorGuardOptions as PureOptions } from '../descriptor-guard.ts';

export type { DescriptorStats, GuardLog } from '../descriptor-guard.ts';

/** The soft and hard RLIMIT_NOFILE from /proc/self/limits; undefined where that file does not exist (not Linux). */
export function readNofileLimit(file = '/proc/self/limits'): { soft: number; hard: number } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  if (line === undefined) return undefined;
  const m = /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
  if (!m) return undefined;
  const num = (s: string): number => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  const soft = num(m[1]!);
  const hard = num(m[2]!);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

/** Descriptors this process has open (/proc/self/fd, less the one the listing itself uses); undefined off Linux. */
export function countOpenDescriptors(dir = '/proc/self/fd'): number | undefined {
  try {
    return Math.max(0, readdirSync(dir).length - 1);
  } catch {
    return undefined;
  }
}

/** Descriptors the network needs beyond its connections: Node's own (event loop, stdio, threads), logs, files. */
export const DESCRIPTOR_MARGIN = 64;

/**
 * What the configured limits need: each listener one, each TCP connection two (client and origin), each UDP flow
 * one (its upstream socket), plus `DESCRIPTOR_MARGIN`.
 */
export function descriptorsNeeded(o: { listeners: number; maxConnections: number; udpFlows: number }): number {
  return o.listeners + 2 * o.maxConnections + o.udpFlows + DESCRIPTOR_MARGIN;
}

/**
 * Concurrent TCP connections assumed when the config sets no `edge.max_connections`: the start-up check needs a
 * figure, and 4,096 is one a default soft limit of 1,024 cannot hold (docs/hardening.md).
 */
export const ASSUMED_MAX_CONNECTIONS = 4_096;

export interface NofileCheck {
  readonly soft: number;
  readonly hard: number;
  readonly needed: number;
  readonly listeners: number;
  readonly maxConnections: number;
  /** True when `maxConnections` is `ASSUMED_MAX_CONNECTIONS` (no edge.max_connections in the config). */
  readonly assumed: boolean;
  readonly udpFlows: number;
}

/**
 * The start-up check: whether the soft RLIMIT_NOFILE holds what the configuration may open. `maxConnections`
 * undefined: `ASSUMED_MAX_CONNECTIONS`; TCP connections count only with a TCP app, UDP flows only with a UDP app.
 * Returns the figures when the limit is too low, undefined when it is enough (or unknown).
 */
export function checkNofile(o: {
  listeners: number;
  maxConnections: number | undefined;
  udpMaxFlows: number;
  tcpApps: boolean;
  udpApps: boolean;
  limit?: { soft: number; hard: number } | undefined;
}): NofileCheck | undefined {
  const limit = o.limit ?? readNofileLimit();
  if (limit === undefined || !Number.isFinite(limit.soft)) return undefined;
  const maxConnections = o.tcpApps ? (o.maxConnections ?? ASSUMED_MAX_CONNECTIONS) : 0;
  const udpFlows = o.udpApps ? o.udpMaxFlows : 0;
  const needed = descriptorsNeeded({ listeners: o.listeners, maxConnections, udpFlows });
  if (limit.soft >= needed) return undefined;
  return { soft: limit.soft, hard: limit.hard, needed, listeners: o.listeners, maxConnections, assumed: o.tcpApps && o.maxConnections === undefined, udpFlows };
}

export interface DescriptorGuardOptions extends Omit<PureOptions, 'limit' | 'count'> {
  /** Soft limit; default: read from /proc/self/limits (none found: the guard admits everything). */
  limit?: number;
  /** Reads the descriptors in use; default `countOpenDescriptors`. */
  count?: () => number | undefined;
}

/** The guard over this process's descriptors: RLIMIT_NOFILE and /proc/self/fd unless the options say otherwise. */
export class DescriptorGuard extends PureGuard {
  constructor(o: DescriptorGuardOptions) {
    super({ ...o, limit: o.limit ?? readNofileLimit()?.soft ?? Number.POSITIVE_INFINITY, count: o.count ?? countOpenDescriptors });
  }
}
