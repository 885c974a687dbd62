/** The edge-IP state file of file-only `refract serve` (src/cli/edge-ip-file.ts): names and holds survive a restart. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEdgeIpFile, writeEdgeIpFile } from '../../../src/cli/edge-ip-file.ts';
import { edgeIpStateFrom } from '../../../src/model/edge-ips.ts';

test('edge-ips.json keeps names and held addresses (with their free-after time) across a write and a read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'refract-edge-ips-'));
  try {
    const path = join(dir, 'data', 'edge-ips.json');
    const state = edgeIpStateFrom({ names: { 'a.example.com': { ipv4: '10.1.0.1' } }, held: { '10.1.0.2': 1_790_000_000_000, 'fd00::2': 1_790_000_000_000 } });
    writeEdgeIpFile(path, state);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).held, { '10.1.0.2': 1_790_000_000_000, 'fd00::2': 1_790_000_000_000 });
    const bad: unknown[] = [];
    assert.deepEqual(readEdgeIpFile(path, (e) => bad.push(e)), state);
    // Without holds, no `held` key is written.
    writeEdgeIpFile(path, edgeIpStateFrom({ names: { 'a.example.com': { ipv4: '10.1.0.1' } } }));
    assert.equal('held' in JSON.parse(readFileSync(path, 'utf8')), false);
    writeFileSync(path, '{not json');
    assert.deepEqual(readEdgeIpFile(path, (e) => bad.push(e)).names, {});
    assert.equal(bad.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
