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

/** The zone `ref` names: the zone with that id, else the zone with that name (any case, a final dot allowed). */
export function findZone(ref: string, zones: readonly Zone[]): Zone | undefined {
  const byId = zones.find((z) => z.id === ref);
  if (byId !== undefined) return byId;
  const key = zoneNameKey(ref);
  return zones.find((z) => z.name === key);
}

/**
 * The zone a DNS name falls in: the zone whose name is the DNS name or its longest parent (`ssh.eu.example.com` is in
 * `eu.example.com` before `example.com`), else the first zone; undefined when there are no zones.
 */
export function zoneOfName(dnsName: string, zones: readonly Zone[]): Zone | undefined {
  const name = zoneNameKey(dnsName);
  let best: Zone | undefined;
  for (const z of zones) {
    if ((name === z.name || name.endsWith(`.${z.name}`)) && (best === undefined || z.name.length > best.name.length)) best = z;
  }
  return best ?? zones[0];
}

/** The message for a `zone` field that names no configured zone. */
export function unknownZoneMessage(ref: string, zones: readonly Zone[]): string {
  if (zones.length === 0) return `zone "${ref}": no zones are configured (zones: [{ name: example.com }])`;
  return `zone "${ref}" is not one of the configured zones (${zones.map((z) => z.name).join(', ')}); give a zone's name or id`;
}
