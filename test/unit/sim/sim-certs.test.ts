/**
 * The simulator's CertSource: deterministic certificate descriptors for scenarios (valid, expired, not yet valid,
 * self-signed, unknown CA, chains), local-CA identities anchored on the virtual epoch, and sim trust anchors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSimCertSource, simCert, SIM_LOCAL_CA, SIM_PUBLIC_CA, SIM_UNKNOWN_ISSUER } from '../../../src/net/sim/sim-certs.ts';
import { isRefractError } from '../../../src/model/errors.ts';

const EPOCH = Date.UTC(2025, 0, 1);
const DAY = 86_400_000;
const isCode = (code: string) => (e: unknown) => isRefractError(e) && e.code === code;

describe('simCert', () => {
  it('anchors validity on the epoch: valid covers it, expired ended before it, not_yet_valid starts after it', () => {
    const v = simCert({ id: 'v', names: ['a.test'] }, EPOCH);
    assert.ok(v.notBeforeMs < EPOCH && EPOCH + 300 * DAY < v.notAfterMs);
    const x = simCert({ id: 'x', names: ['a.test'], validity: 'expired' }, EPOCH);
    assert.ok(x.notBeforeMs < x.notAfterMs && x.notAfterMs < EPOCH);
    const n = simCert({ id: 'n', names: ['a.test'], validity: 'not_yet_valid' }, EPOCH);
    assert.ok(EPOCH < n.notBeforeMs && n.notBeforeMs < n.notAfterMs);
  });

  it('names its issuer: the public CA by default, itself, an unknown CA, or another descriptor', () => {
    assert.equal(simCert({ id: 'p', names: ['a.test'] }, EPOCH).issuer, SIM_PUBLIC_CA.id);
    assert.equal(simCert({ id: 's', names: ['a.test'], issuer: 'self' }, EPOCH).issuer, 's');
    assert.equal(simCert({ id: 'u', names: ['a.test'], issuer: 'unknown' }, EPOCH).issuer, SIM_UNKNOWN_ISSUER);
    assert.match(SIM_UNKNOWN_ISSUER, /^unknown:/);
    assert.equal(simCert({ id: 'i', names: ['a.test'], issuer: 'my-ca' }, EPOCH).issuer, 'my-ca');
    assert.equal(simCert({ id: 'k', names: ['a.test'], keyType: 'ecdsa' }, EPOCH).keyType, 'ecdsa');
  });

  it('gives equal specs equal fingerprints and different certificates different ones, in OpenSSL shape', () => {
    const a = simCert({ id: 'a', names: ['a.test'] }, EPOCH);
    assert.deepEqual(simCert({ id: 'a', names: ['a.test'] }, EPOCH), a);
    assert.match(a.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const others = [
      simCert({ id: 'b', names: ['a.test'] }, EPOCH),
      simCert({ id: 'a', names: ['b.test'] }, EPOCH),
      simCert({ id: 'a', names: ['a.test'], validity: 'expired' }, EPOCH),
      simCert({ id: 'a', names: ['a.test'], issuer: 'self' }, EPOCH),
      SIM_PUBLIC_CA,
      SIM_LOCAL_CA,
    ];
    assert.equal(new Set([a, ...others].map((c) => c.fingerprint256)).size, others.length + 1);
  });
});

describe('sim CertSource', () => {
  it('issues local-CA identities for the requested names, valid for a year from the epoch, and keeps them', async () => {
    let now = EPOCH;
    const src = createSimCertSource({ epochMs: () => now });
    const ids = await src.identities([{ appId: 'app1', names: ['a.test', '192.0.2.1'] }]);
    const id = ids.get('app1');
    assert.ok(id);
    assert.equal(id.pem, undefined, 'no cryptography in the simulator');
    assert.deepEqual(id.cert.names, ['a.test', '192.0.2.1']);
    assert.equal(id.cert.issuer, SIM_LOCAL_CA.id);
    assert.ok(id.cert.notBeforeMs <= EPOCH && id.cert.notAfterMs === EPOCH + 365 * DAY);
    now += 10 * DAY;
    assert.equal((await src.identities([{ appId: 'app1', names: ['a.test', '192.0.2.1'] }])).get('app1')?.cert, id.cert, 'kept while names are unchanged');
    const renamed = (await src.identities([{ appId: 'app1', names: ['b.test'] }])).get('app1')?.cert;
    assert.deepEqual(renamed?.names, ['b.test']);
    assert.notEqual(renamed?.fingerprint256, id.cert.fingerprint256);
    now += 340 * DAY; // under 30 days left
    const renewed = (await src.identities([{ appId: 'app1', names: ['b.test'] }])).get('app1')?.cert;
    assert.ok(renewed && renamed && renewed.notAfterMs > renamed.notAfterMs);
  });

  it('is deterministic: two sources with the same inputs give identical identities', async () => {
    const mk = () => createSimCertSource({ epochMs: () => EPOCH }).identities([{ appId: 'x', names: ['x.test'] }]);
    assert.deepEqual([...(await mk())], [...(await mk())]);
  });

  it('serves a named descriptor for certFile, with its intermediates as the chain', async () => {
    const inter = simCert({ id: 'inter', names: [] }, EPOCH);
    const leaf = simCert({ id: 'origin-good', names: ['o.test'], issuer: 'inter' }, EPOCH);
    const expired = simCert({ id: 'origin-expired', names: ['o.test'], validity: 'expired' }, EPOCH);
    const src = createSimCertSource({ epochMs: () => EPOCH, certs: [inter, leaf, expired] });
    const ids = await src.identities([
      { appId: 'a', names: ['a.test'], certFile: 'origin-good', keyFile: 'origin-good' },
      { appId: 'b', names: ['b.test'], certFile: 'origin-expired' },
    ]);
    assert.equal(ids.get('a')?.cert, leaf);
    assert.deepEqual(ids.get('a')?.chain, [inter]);
    assert.equal(ids.get('b')?.cert, expired);
    assert.deepEqual(ids.get('b')?.chain, []);
    assert.deepEqual(src.watchedFiles(), []);
  });

  it('refuses an unknown descriptor (E_TLS_CERT_READ), a key of another certificate (E_TLS_CERT_INVALID) and no names (E_TLS_NO_CERTIFICATE)', async () => {
    const a = simCert({ id: 'a', names: ['a.test'] }, EPOCH);
    const b = simCert({ id: 'b', names: ['b.test'] }, EPOCH);
    const src = createSimCertSource({ epochMs: () => EPOCH, certs: [a, b] });
    await assert.rejects(src.identities([{ appId: 'x', names: ['x.test'], certFile: 'nope', keyFile: 'nope' }]), isCode('E_TLS_CERT_READ'));
    await assert.rejects(src.identities([{ appId: 'x', names: ['x.test'], certFile: 'a', keyFile: 'b' }]), isCode('E_TLS_CERT_INVALID'));
    await assert.rejects(src.identities([{ appId: 'x', names: ['x.test'], keyFile: 'a' }]), isCode('E_TLS_CERT_INVALID'));
    await assert.rejects(src.identities([{ appId: 'x', names: [] }]), isCode('E_TLS_NO_CERTIFICATE'));
    assert.throws(() => createSimCertSource({ epochMs: () => EPOCH, certs: [a, a] }));
  });

  it('trusts the sim public CA and a named bundle descriptor, never the local CA (as the real source)', async () => {
    const custom = simCert({ id: 'corp-ca', names: [], issuer: 'self' }, EPOCH);
    const src = createSimCertSource({ epochMs: () => EPOCH, certs: [custom] });
    assert.deepEqual(await src.trust(undefined), { system: false, cas: [SIM_PUBLIC_CA] }, 'like the real source: never the edge\'s own local CA');
    assert.deepEqual((await src.trust('corp-ca')).cas, [SIM_PUBLIC_CA, custom]);
    await assert.rejects(src.trust('missing'), isCode('E_TLS_CERT_READ'));
  });
});
