/**
 * Edge port → origin port, as Spectrum maps it: a range maps 1:1 by offset (`tcp/1000-2000` → `3000-4000`, so
 * edge :1005 → origin :3005); a single origin port takes every edge port. Pure.
 */
import { type PortRange } from '../model/types.ts';

/** True when `port` lies in the inclusive range `r`. */
export function inRange(r: PortRange, port: number): boolean {
  return port >= r.start && port <= r.end;
}

/**
 * The origin port for a connection that arrived on edge `port`. Validation guarantees the preconditions (origin is
 * a single port or as long as the edge range), so a violation is a bug.
 * @throws Error if `port` is outside `edge` or the ranges differ in length with origin not a single port.
 */
export function mapPort(edge: PortRange, origin: PortRange, port: number): number {
  if (!inRange(edge, port)) throw new Error(`mapPort: ${port} is outside edge ${edge.start}-${edge.end}`);
  if (origin.start === origin.end) return origin.start;
  if (origin.end - origin.start !== edge.end - edge.start) {
    throw new Error(`mapPort: origin ${origin.start}-${origin.end} and edge ${edge.start}-${edge.end} differ in length`);
  }
  return origin.start + (port - edge.start);
}
