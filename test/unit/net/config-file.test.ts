/**
 * Reading the config file within limits and off the data path (issue #16): the size is checked before a byte is
 * read; the worker thread gives the same result as this thread; a worker that runs out of its heap is a coded
 * refusal, not a dead process. Geolocation CSV files: the size limit, and the worker's table answers as this
 * thread's does.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFileOffThread, readConfigFile } from '../../../src/net/node/config-file.ts';
import { loadGeo } from '../../../src/net/node/geo-loader.ts';
import { CONFIG_FILE_LIMITS } from '../../../src/model/config-file.ts';
import { isRefractError } from '../../../src/model/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'refract-config-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const EXAMPLE = readFileSync(new URL('../../../examples/refract.yaml', import.meta.url), 'utf8');
const codes = (r: { ok: boolean; issues?: readonly { code: string }[] }): string[] => (r.ok ? [] : (r.issues ?? []).map((i) => i.code));

describe('readConfigFile', () => {
  it('refuses a 50 MB file with E_CONFIG_TOO_LARGE from its size alone (a sparse file: nothing to read)', () => {
    const file = join(dir, 'huge.yaml');
    writeFileSync(file, '');
    truncateSync(file, 50 * 1024 * 1024);
    const r = readConfigFile(file);
    assert.deepEqual(codes(r), ['E_CONFIG_TOO_LARGE']);
  });

  it('reads a file exactly at the limit, and refuses one byte more', () => {
    const file = join(dir, 'edge.yaml');
    const text = `${EXAMPLE}\n#`;
    writeFileSync(file, text);
    const at = Buffer.byteLength(text);
    assert.equal(readConfigFile(file, { ...CONFIG_FILE_LIMITS, maxBytes: at }).ok, true);
    assert.deepEqual(codes(readConfigFile(file, { ...CONFIG_FILE_LIMITS, maxBytes: at - 1 })), ['E_CONFIG_TOO_LARGE']);
  });

  it('says E_CONFIG_READ for a missing file and a directory', () => {
    assert.deepEqual(codes(readConfigFile(join(dir, 'absent.yaml'))), ['E_CONFIG_READ']);
    assert.deepEqual(codes(readConfigFile(dir)), ['E_CONFIG_READ']);
  });
});

describe('loadConfigFileOffThread', () => {
  it('gives what readConfigFile gives, for a valid and an invalid file, the config deep-frozen', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, EXAMPLE);
    const here = readConfigFile(good);
    const there = await loadConfigFileOffThread(good);
    assert.deepEqual(there, here);
    assert.ok(there.ok && Object.isFrozen(there.config.apps[0]));
    const noRaw = await loadConfigFileOffThread(good, { raw: false });
    assert.ok(noRaw.ok && noRaw.raw === undefined);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, EXAMPLE.replace('tcp/6025', 'tcp/0'));
    const badThere = await loadConfigFileOffThread(bad);
    assert.deepEqual(badThere, readConfigFile(bad));
    assert.ok(codes(badThere).includes('E_CONFIG_PORT_ZERO'));
  });

  it('refuses a file whose parse outgrows the worker heap with E_CONFIG_TOO_COMPLEX; this process lives on', async () => {
    const file = join(dir, 'heavy.yaml');
    writeFileSync(file, `${EXAMPLE}\nignored:\n${'  - some item text\n'.repeat(150_000)}`);
    const r = await loadConfigFileOffThread(file, { maxHeapMb: 32, limits: { maxBytes: 8 * 1024 * 1024, maxNodes: 1_000_000 } });
    assert.deepEqual(codes(r), ['E_CONFIG_TOO_COMPLEX']);
  });
});

describe('geolocation files: size limit and the worker', () => {
  const csv = ['# start,end,country', '1.0.0.0,1.0.0.255,AU', '8.8.8.0,8.8.8.255,US', '2001:db8::,2001:db8::ffff,NL', ''].join('\n');

  it('refuses a CSV file over maxBytes with E_GEO_TOO_LARGE, unread', async () => {
    const file = join(dir, 'country.csv');
    writeFileSync(file, csv);
    await assert.rejects(loadGeo({ country: [file] }, { watch: false, maxBytes: 10 }), (e: unknown) => isRefractError(e) && e.code === 'E_GEO_TOO_LARGE');
  });

  it("answers from the worker's table as from this thread's", async () => {
    const file = join(dir, 'country2.csv');
    writeFileSync(file, csv);
    const a = await loadGeo({ country: [file] }, { watch: false });
    const b = await loadGeo({ country: [file] }, { watch: false, worker: false });
    try {
      for (const ip of ['1.0.0.7', '8.8.8.8', '2001:db8::1', '9.9.9.9', '::ffff:8.8.8.8', 'not an ip']) assert.equal(a.country(ip), b.country(ip), ip);
      assert.equal(a.country('8.8.8.8'), 'US');
    } finally {
      a.close();
      b.close();
    }
  });

  it('reports E_GEO_FORMAT from the worker with the line', async () => {
    const file = join(dir, 'bad.csv');
    writeFileSync(file, '1.0.0.0,1.0.0.255,AU\nnot,a,row,at,all\n');
    await assert.rejects(loadGeo({ country: [file] }, { watch: false }), (e: unknown) => isRefractError(e) && e.code === 'E_GEO_FORMAT' && e.details?.['line'] === 2);
  });
});
