/**
 * Zones: Cloudflare's unit of ownership. Every app and every zone-scoped IP Access rule lives in one zone; a rule
 * of a zone applies only to that zone's apps with `ip_firewall: true` (docs/access-rules.md, "Zones").
 *
 * An app or rule names its zone with the Refract extension field `zone` (the zone's id or its name); an app that
 * names none belongs to the zone whose name is its `dns.name` or the longest parent of it, else to the first zone.
 * A rule that names none is node-wide: it applies to every app with `ip_firewall: true`, whatever its zone.
 */
import type { Zone } from './types.ts';

/** A zone name or DNS name compared the way zones are: lowercase, without a final dot. */
export function zoneNameKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * Zones by id and by name (the first of each wins, as a scan in list order finds it), built once per zones list:
 * every app looks its zone up, so a scan per app made validation O(apps × zones) (10,000 of each: 30 s).
 */
interface ZoneIndex {
  readonly length: number;
  readonly byId: ReadonlyMap<string, Zone>;
  readonly byName: ReadonlyMap<string, Zone>;
}
const INDEXES = new WeakMap<readonly Zone[], ZoneIndex>();

function zoneIndex(zones: readonly Zone[]): ZoneIndex {
  const had = INDEXES.get(zones);
  if (had !== undefined && had.length === zones.length) return had;
  const byId = new Map<string, Zone>();
  const byName = new Map<string, Zone>();
  for (const z of zones) {
    if (!byId.has(z.id)) byId.set(z.id, z);
    if (!byName.has(z.name)) byName.set(z.name, z);
  }
  const index = { length: zones.length, byId, byName };
  INDEXES.set(zones, index);
  return index;
}

/** The zone `ref` names: the zone with that id, else the zone with that name (any case, a final dot allowed). */
export function findZone(ref: string, zones: readonly Zone[]): Zone | undefined {
  const ix = zoneIndex(zones);
  return ix.byId.get(ref) ?? ix.byName.get(zoneNameKey(ref));
}

/** The zone named `name` or its longest parent (`a.b.example.com`, `b.example.com`, `example.com`, `com`), if any. */
function longestParentZone(name: string, zones: readonly Zone[]): Zone | undefined {
  const byName = zoneIndex(zones).byName;
  for (let at = 0; ; ) {
    const z = byName.get(at === 0 ? name : name.slice(at));
    if (z !== undefined) return z;
    const dot = name.indexOf('.', at);
    if (dot === -1) return undefined;
    at = dot + 1;
  }
}

/**
 * The zone a DNS name falls in: the zone whose name is the DNS name or its longest parent (`ssh.eu.example.com` is in
 * `eu.example.com` before `example.com`), else the first zone; undefined when there are no zones.
 */
export function zoneOfName(dnsName: string, zones: readonly Zone[]): Zone | undefined {
  return longestParentZone(zoneNameKey(dnsName), zones) ?? zones[0];
}

/** Whether `name` (as given) is a zone's name or lies under one. */
export function inAnyZone(name: string, zones: readonly Zone[]): boolean {
  return longestParentZone(name, zones) !== undefined;
}

/** The message for a `zone` field that names no configured zone. */
export function unknownZoneMessage(ref: string, zones: readonly Zone[]): string {
  if (zones.length === 0) return `zone "${ref}": no zones are configured (zones: [{ name: example.com }])`;
  return `zone "${ref}" is not one of the configured zones (${zones.map((z) => z.name).join(', ')}); give a zone's name or id`;
}
