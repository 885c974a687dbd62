/**
 * The ip-location-db CSV files as shipped (dev dependencies `@ip-location-db/asn` and
 * `@ip-location-db/geo-whois-asn-country`, the files docs/access-rules.md recommends): they nest single addresses and
 * small blocks inside larger ones and overlap partly in a few places, and must load, with the narrowest range
 * answering. Addresses whose owner is common knowledge are checked, plus one nested and one partly overlapping
 * range of the pinned package versions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadGeo, type GeoLoadEvent } from '../../../src/net/node/geo-loader.ts';

const require = createRequire(import.meta.url);
const pkg = (name: string, file: string): string => join(dirname(require.resolve(`${name}/package.json`)), file);

void describe('real geolocation data (ip-location-db packages)', () => {
  void it('loads the country and ASN files of both families, nested and overlapping ranges included, and answers well-known addresses', { timeout: 180_000 }, async () => {
    const events: GeoLoadEvent[] = [];
    const geo = await loadGeo(
      {
        country: [pkg('@ip-location-db/geo-whois-asn-country', 'geo-whois-asn-country-ipv4.csv'), pkg('@ip-location-db/geo-whois-asn-country', 'geo-whois-asn-country-ipv6.csv')],
        asn: [pkg('@ip-location-db/asn', 'asn-ipv4.csv'), pkg('@ip-location-db/asn', 'asn-ipv6.csv')],
      },
      { watch: false, onEvent: (e) => events.push(e) },
    );
    geo.close();

    // Google Public DNS, Cloudflare's 1.1.1.1, both families, and an IPv4-mapped client.
    for (const ip of ['8.8.8.8', '2001:4860:4860::8888', '::ffff:8.8.8.8']) {
      assert.equal(geo.country(ip), 'US', ip);
      assert.equal(geo.asn(ip)?.asn, 15169, ip);
    }
    for (const ip of ['1.1.1.1', '2606:4700:4700::1111']) assert.equal(geo.asn(ip)?.asn, 13335, ip);
    assert.equal(geo.country('127.0.0.1'), 'XX'); // loopback: in no file
    assert.equal(geo.asn('127.0.0.1'), undefined);

    // A single address nested in a /23 (geo-whois-asn-country-ipv4.csv: 2.58.196.0-2.58.197.255 DE, 2.58.197.15 BE).
    assert.equal(geo.country('2.58.197.15'), 'BE');
    assert.equal(geo.country('2.58.197.14'), 'DE');
    // The partial overlap in asn-ipv4.csv: 214.95.0.0-215.0.255.255 AS749 and the narrower 215.0.0.0-215.1.3.255 AS721.
    assert.equal(geo.asn('214.95.0.1')?.asn, 749);
    assert.equal(geo.asn('215.0.0.1')?.asn, 721);
    assert.equal(geo.asn('215.1.3.255')?.asn, 721);

    const loaded = events.filter((e) => e.event === 'geo.loaded');
    assert.equal(loaded.length, 4, JSON.stringify(events.filter((e) => e.event !== 'geo.loaded')));
    for (const e of loaded) {
      assert.equal(e.format, 'csv');
      assert.ok((e.ranges ?? 0) > 50_000, `${e.file}: ${e.ranges} ranges`);
      assert.ok((e.segments ?? 0) >= 1 && (e.segments ?? 0) <= 2 * (e.ranges ?? 0) - 1, `${e.file}: ${e.segments} segments`);
    }
    const byName = (s: string): (typeof loaded)[number] | undefined => loaded.find((e) => e.file.endsWith(s));
    assert.ok((byName('geo-whois-asn-country-ipv4.csv')?.nested ?? 0) > 100, 'the country file nests ranges');
    assert.ok((byName('asn-ipv4.csv')?.partial ?? 0) >= 1, 'asn-ipv4.csv overlaps partly');
  });
});
