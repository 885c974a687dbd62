/**
 * Loading geolocation files from disk (CSV and MMDB) and reloading them on change. The MMDB files are written by a
 * small encoder below that follows the MaxMind DB format spec (search tree, data section, metadata), so the
 * `maxmind` reader is exercised on real files without shipping a database.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGeo, mmdbAsn, mmdbCountry, type GeoLoadEvent, type LoadedGeo } from '../../../src/net/node/geo-loader.ts';
import { isRefractError } from '../../../src/model/errors.ts';
import { mmdb } from '../../helpers/mmdb.ts';

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────────────────────

const dir = mkdtempSync(join(tmpdir(), 'refract-geo-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
/** A fresh file name in the test directory (each test its own files, so watchers never see another test's writes). */
const fresh = (name: string): string => join(dir, `${fileNo++}-${name}`);
const write = (file: string, content: string | Buffer): string => {
  writeFileSync(file, content);
  return file;
};

/** Collects loader events; `next` waits (at most `ms`) for the next event matching `pred`. */
function recorder(): { onEvent: (e: GeoLoadEvent) => void; events: GeoLoadEvent[]; next: (pred: (e: GeoLoadEvent) => boolean, ms?: number) => Promise<GeoLoadEvent> } {
  const events: GeoLoadEvent[] = [];
  const waiters: { pred: (e: GeoLoadEvent) => boolean; resolve: (e: GeoLoadEvent) => void }[] = [];
  return {
    events,
    onEvent: (e) => {
      events.push(e);
      for (const w of [...waiters]) {
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    },
    next: (pred, ms = 5_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching geo event within ${ms} ms`)), ms);
        waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      }),
  };
}

async function refusal(p: Promise<LoadedGeo>): Promise<{ code: string; details: Readonly<Record<string, unknown>> | undefined }> {
  try {
    (await p).close();
  } catch (e) {
    assert.ok(isRefractError(e), String(e));
    return { code: e.code, details: e.details };
  }
  assert.fail('expected loadGeo to fail');
}

// ── tests ───────────────────────────────────────────────────────────────────────────────────────────────────────

void describe('loading geolocation files', () => {
  void it('loads ip-location-db CSV files for both families and reports each load', async () => {
    const rec = recorder();
    const c4 = write(fresh('asn-country-ipv4.csv'), '1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.3.255,CN\n1.0.2.7,1.0.2.7,HK\n');
    const c6 = write(fresh('asn-country-ipv6.csv'), '2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\n');
    const a6num = write(fresh('asn-ipv6-num.csv'), '1,1,64500,LOOPBACKISH\n');
    const a4 = write(fresh('asn-ipv4.csv'), '1.0.0.0,1.0.0.255,13335,CLOUDFLARENET\n');
    const geo = await loadGeo({ country: [c4, c6], asn: [a4, a6num] }, { watch: false, onEvent: rec.onEvent });
    try {
      assert.equal(geo.country('1.0.2.1'), 'CN');
      assert.equal(geo.country('1.0.2.7'), 'HK'); // nested: the narrowest range wins
      assert.equal(geo.country('::ffff:1.0.0.1'), 'AU');
      assert.equal(geo.country('2001:200::5'), 'JP');
      assert.equal(geo.country('192.0.2.1'), 'XX');
      assert.deepEqual(geo.asn('1.0.0.1'), { asn: 13335, org: 'CLOUDFLARENET' });
      assert.deepEqual(geo.asn('::1'), { asn: 64500, org: 'LOOPBACKISH' }); // -num file named ipv6: integers are IPv6
      assert.equal(geo.asn('0.0.0.1'), undefined);
      assert.deepEqual(
        rec.events.map((e) => (e.event === 'geo.loaded' ? [e.kind, e.format, e.ranges, e.nested, e.partial, e.segments] : [e.event])),
        [['country', 'csv', 3, 1, 0, 4], ['country', 'csv', 1, 0, 0, 1], ['asn', 'csv', 1, 0, 0, 1], ['asn', 'csv', 1, 0, 0, 1]],
      );
    } finally {
      geo.close();
    }
  });

  void it('loads a CSV file of several MiB, parsed in pieces, with no row lost at a piece boundary', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 120_000; i++) lines.push(`${i * 256},${i * 256 + 255},${i % 2 === 0 ? 'AU' : 'NZ'},padding-to-make-the-file-larger`);
    const text = lines.join('\n');
    assert.ok(text.length > 4 * 2 ** 20);
    const file = write(fresh('big-ipv4-num.csv'), text);
    const geo = await loadGeo({ country: [file] }, { watch: false });
    geo.close();
    const dotted = (n: number): string => [24, 16, 8, 0].map((sh) => (n >>> sh) & 255).join('.');
    for (let i = 0; i < 120_000; i += 7) assert.equal(geo.country(dotted(i * 256 + (i % 256))), i % 2 === 0 ? 'AU' : 'NZ', `line ${i + 1}`);
    assert.equal(geo.country(dotted(120_000 * 256)), 'XX');
  });

  void it('loads MMDB files of the GeoLite2 and ip-location-db shapes, IPv4-mapped clients as IPv4', async () => {
    const country = write(fresh('country.mmdb'), mmdb(6, [
      ['1.0.0.0/24', { country: { iso_code: 'DE' }, registered_country: { iso_code: 'FR' } }],
      ['1.0.1.0/24', { registered_country: { iso_code: 'fr' } }],
      ['2001:db8::/32', { country_code: 'au' }],
      ['2001:db8:1::/48', { city: 'nowhere' }],
    ]));
    const asn = write(fresh('asn.mmdb'), mmdb(6, [
      ['1.0.0.0/16', { autonomous_system_number: 13335, autonomous_system_organization: 'CLOUDFLARENET' }],
      ['2001:db8::/32', { autonomous_system_number: 64500 }],
    ]));
    const geo = await loadGeo({ country: [country], asn: [asn] }, { watch: false });
    try {
      assert.equal(geo.country('1.0.0.9'), 'DE');
      assert.equal(geo.country('::ffff:1.0.0.9'), 'DE');
      assert.equal(geo.country('1.0.1.9'), 'FR');
      assert.equal(geo.country('2001:db8::1'), 'AU');
      assert.equal(geo.country('2001:db8:1::1'), 'XX'); // a record without a country
      assert.equal(geo.country('9.9.9.9'), 'XX');
      assert.deepEqual(geo.asn('1.0.200.1'), { asn: 13335, org: 'CLOUDFLARENET' });
      assert.equal(geo.asn('1.0.200.1'), geo.asn('1.0.0.1'));
      assert.deepEqual(geo.asn('2001:db8::1'), { asn: 64500 });
      assert.equal(geo.asn('1.1.0.1'), undefined);
      assert.equal(geo.asn('garbage'), undefined);
    } finally {
      geo.close();
    }
  });

  void it('never asks an IPv4-only MMDB about an IPv6 address', async () => {
    const v4only = write(fresh('v4.mmdb'), mmdb(4, [['0.0.0.0/1', { country_code: 'US' }], ['128.0.0.0/1', { country_code: 'CA' }]]));
    const geo = await loadGeo({ country: [v4only] }, { watch: false });
    try {
      assert.equal(geo.country('1.2.3.4'), 'US');
      assert.equal(geo.country('200.2.3.4'), 'CA');
      assert.equal(geo.country('2001:db8::1'), 'XX');
    } finally {
      geo.close();
    }
  });

  void it('reads country and ASN fields from MMDB records, refusing malformed ones', () => {
    assert.equal(mmdbCountry({ country: { iso_code: 'de' } }), 'DE');
    assert.equal(mmdbCountry({ country_code: 'T1' }), 'T1');
    assert.equal(mmdbCountry({ country: { iso_code: 'DEU' } }), undefined);
    assert.equal(mmdbCountry(null), undefined);
    assert.deepEqual(mmdbAsn({ autonomous_system_number: 1, autonomous_system_organization: '' }), { asn: 1 });
    assert.equal(mmdbAsn({ autonomous_system_number: 0 }), undefined);
    assert.equal(mmdbAsn({ autonomous_system_number: '13335' }), undefined);
  });

  void it('refuses a missing file with E_GEO_READ and malformed data with E_GEO_FORMAT', async () => {
    assert.deepEqual((await refusal(loadGeo({ country: [join(dir, 'missing.csv')] }))).code, 'E_GEO_READ');
    assert.deepEqual((await refusal(loadGeo({ asn: [join(dir, 'missing.mmdb')] }))).code, 'E_GEO_READ');
    assert.deepEqual((await refusal(loadGeo({ country: [dir] }))).code, 'E_GEO_READ');
    const bad = write(fresh('bad.csv'), '1.0.0.0,1.0.0.255,AU\n1.0.0.0,1.0.0.9,CHN\n');
    assert.deepEqual(await refusal(loadGeo({ country: [bad] })), { code: 'E_GEO_FORMAT', details: { file: bad, line: 2 } });
    const notMmdb = write(fresh('x.mmdb'), 'not a database at all');
    assert.equal((await refusal(loadGeo({ country: [notMmdb] }))).code, 'E_GEO_FORMAT');
  });

  void it('reloads a CSV file replaced by rename, and one rewritten in place', async () => {
    const rec = recorder();
    const file = write(fresh('country.csv'), '1.0.0.0,1.0.0.255,AU\n');
    const geo = await loadGeo({ country: [file] }, { debounceMs: 20, onEvent: rec.onEvent });
    try {
      assert.equal(geo.country('1.0.0.1'), 'AU');
      const loaded = rec.next((e) => e.event === 'geo.loaded');
      write(`${file}.tmp`, '1.0.0.0,1.0.0.255,NZ\n');
      renameSync(`${file}.tmp`, file);
      await loaded;
      assert.equal(geo.country('1.0.0.1'), 'NZ');
      const again = rec.next((e) => e.event === 'geo.loaded');
      write(file, '1.0.0.0,1.0.0.255,FJ\n');
      await again;
      assert.equal(geo.country('1.0.0.1'), 'FJ');
    } finally {
      geo.close();
    }
  });

  void it('reloads a file mounted Kubernetes-style (file → ..data/file, ..data swapped), on every swap', async () => {
    const rec = recorder();
    const mount = fresh('mount');
    mkdirSync(join(mount, '..v0'), { recursive: true });
    write(join(mount, '..v0', 'country.csv'), '1.0.0.0,1.0.0.255,AU\n');
    symlinkSync('..v0', join(mount, '..data'));
    symlinkSync('..data/country.csv', join(mount, 'country.csv'));
    const geo = await loadGeo({ country: [join(mount, 'country.csv')] }, { debounceMs: 20, onEvent: rec.onEvent });
    try {
      assert.equal(geo.country('1.0.0.1'), 'AU');
      for (const [v, cc] of [[1, 'NZ'], [2, 'FJ']] as const) {
        const loaded = rec.next((e) => e.event === 'geo.loaded');
        mkdirSync(join(mount, `..v${v}`));
        write(join(mount, `..v${v}`, 'country.csv'), `1.0.0.0,1.0.0.255,${cc}\n`);
        symlinkSync(`..v${v}`, join(mount, '..data_tmp'));
        renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
        rmSync(join(mount, `..v${v - 1}`), { recursive: true });
        await loaded;
        assert.equal(geo.country('1.0.0.1'), cc, `swap ${v}`);
      }
    } finally {
      geo.close();
    }
  });

  void it('keeps the previous data when a changed file is malformed, and says so', async () => {
    const rec = recorder();
    const file = write(fresh('asn.csv'), '1.0.0.0,1.0.0.255,13335,CF\n');
    const geo = await loadGeo({ asn: [file] }, { debounceMs: 20, onEvent: rec.onEvent });
    try {
      const rejected = rec.next((e) => e.event === 'geo.rejected');
      write(file, '1.0.0.0,1.0.0.255,not-an-asn,CF\n');
      const e = await rejected;
      assert.ok(e.event === 'geo.rejected');
      assert.equal(e.error.code, 'E_GEO_FORMAT');
      assert.equal(e.kind, 'asn');
      assert.deepEqual(geo.asn('1.0.0.1'), { asn: 13335, org: 'CF' });
    } finally {
      geo.close();
    }
  });

  void it('reloads an MMDB file when it changes', async () => {
    const rec = recorder();
    const file = write(fresh('c.mmdb'), mmdb(6, [['1.0.0.0/24', { country_code: 'AU' }]]));
    const geo = await loadGeo({ country: [file] }, { debounceMs: 20, onEvent: rec.onEvent });
    try {
      assert.equal(geo.country('1.0.0.1'), 'AU');
      const loaded = rec.next((e) => e.event === 'geo.loaded' && e.format === 'mmdb');
      write(`${file}.tmp`, mmdb(6, [['1.0.0.0/24', { country_code: 'NZ' }]]));
      renameSync(`${file}.tmp`, file);
      await loaded;
      assert.equal(geo.country('1.0.0.1'), 'NZ');
    } finally {
      geo.close();
    }
  });

  void it('re-reads every file on reload(), without watching', async () => {
    const file = write(fresh('country.csv'), '1.0.0.0,1.0.0.255,AU\n');
    const geo = await loadGeo({ country: [file] }, { watch: false });
    try {
      write(file, '1.0.0.0,1.0.0.255,NZ\n');
      assert.equal(geo.country('1.0.0.1'), 'AU');
      await geo.reload();
      assert.equal(geo.country('1.0.0.1'), 'NZ');
    } finally {
      geo.close();
    }
  });

  void it('stops reloading once closed, and keeps answering', async () => {
    const rec = recorder();
    const file = write(fresh('country.csv'), '1.0.0.0,1.0.0.255,AU\n');
    const geo = await loadGeo({ country: [file] }, { debounceMs: 20, onEvent: rec.onEvent });
    geo.close();
    geo.close();
    const before = rec.events.length;
    write(file, '1.0.0.0,1.0.0.255,NZ\n');
    await assert.rejects(rec.next(() => true, 400));
    assert.equal(rec.events.length, before);
    assert.equal(geo.country('1.0.0.1'), 'AU');
  });
});
