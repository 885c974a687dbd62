/**
 * The outcome table (src/core/outcomes.ts) is the one source of every status the engines report: its classifiers
 * pick the documented row for each errno and TLS failure, and docs/errors.md's status table says exactly what the
 * table holds, both ways.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OUTCOMES, clientTlsOutcome, connectFailOutcome, establishedOutcome, originTlsOutcome, udpOpenFailedOutcome } from '../../../src/core/outcomes.ts';
import { isErrorCode } from '../../../src/model/errors.ts';

test('every outcome carries a known error code (or none for a normal close) and a frozen row', () => {
  for (const [name, o] of Object.entries(OUTCOMES)) {
    assert.ok(o.code === '' ? name === 'normal' : isErrorCode(o.code), `${name}: ${o.code}`);
    assert.ok(Object.isFrozen(o), name);
  }
});

test('an established connection error maps by side and errno', () => {
  assert.equal(establishedOutcome('upstream', 'ECONNRESET').status, 444);
  assert.equal(establishedOutcome('upstream', 'ETIMEDOUT').status, 445);
  assert.equal(establishedOutcome('upstream', 'EPIPE').status, 448);
  assert.equal(establishedOutcome('upstream', 'EHOSTDOWN').status, 447);
  assert.equal(establishedOutcome('downstream', 'ECONNRESET').status, 499);
  assert.equal(establishedOutcome('downstream', 'ECONNRESET').reason, 'downstream_reset');
  assert.equal(establishedOutcome('downstream', 'ETIMEDOUT').status, 497);
  assert.equal(establishedOutcome('downstream', 'EPIPE').status, 498);
  assert.equal(establishedOutcome('downstream', 'EIO').status, 495);
});

test('no origin connected: the last attempt decides 520-523, a connect timeout is 522 whatever the errno', () => {
  assert.equal(connectFailOutcome('ECONNREFUSED', false), OUTCOMES.connect_refused);
  assert.equal(connectFailOutcome('ECONNREFUSED', true), OUTCOMES.connect_timeout);
  assert.equal(connectFailOutcome('ETIMEDOUT', false), OUTCOMES.connect_timeout);
  assert.equal(connectFailOutcome('EHOSTUNREACH', false), OUTCOMES.connect_unreachable);
  assert.equal(connectFailOutcome('ENETUNREACH', false), OUTCOMES.connect_unreachable);
  assert.equal(connectFailOutcome(undefined, false), OUTCOMES.connect_failed);
});

test('out of descriptors at the origin: 503 E_UPSTREAM_EMFILE, TCP and UDP alike, never the generic 520', () => {
  assert.equal(connectFailOutcome('EMFILE', false), OUTCOMES.connect_descriptors);
  assert.equal(connectFailOutcome('ENFILE', false), OUTCOMES.connect_descriptors);
  assert.equal(OUTCOMES.connect_descriptors.status, 503);
  assert.equal(OUTCOMES.connect_descriptors.code, 'E_UPSTREAM_EMFILE');
  assert.equal(udpOpenFailedOutcome('E_UPSTREAM_EMFILE'), OUTCOMES.connect_descriptors);
  assert.equal(udpOpenFailedOutcome('E_UPSTREAM_CONNECT_FAILED'), OUTCOMES.connect_failed);
});

test('TLS failures: 400 bad SNI, 540 no certificate, 443 otherwise; origin 526 for refused certificates, 525 otherwise', () => {
  assert.equal(clientTlsOutcome('unknown_sni').status, 400);
  assert.equal(clientTlsOutcome('no_certificate').status, 540);
  assert.equal(clientTlsOutcome('handshake_timeout').code, 'E_TLS_HANDSHAKE_TIMEOUT');
  assert.equal(clientTlsOutcome('no_shared_cipher').status, 443);
  assert.equal(clientTlsOutcome(undefined).status, 443);
  for (const r of ['cert_expired', 'cert_not_yet_valid', 'cert_wrong_name', 'cert_self_signed', 'cert_unknown_ca'] as const) {
    assert.equal(originTlsOutcome(r).status, 526, r);
  }
  assert.equal(originTlsOutcome('cert_not_yet_valid').code, 'E_TLS_ORIGIN_CERT_EXPIRED');
  assert.equal(originTlsOutcome('no_shared_version').status, 525);
  assert.equal(originTlsOutcome('handshake_timeout').code, 'E_TLS_HANDSHAKE_TIMEOUT');
});

test('a UDP flow that cannot open: 531 when the name did not resolve, 520 otherwise', () => {
  assert.equal(udpOpenFailedOutcome('E_UPSTREAM_RESOLVE_FAILED').status, 531);
  assert.equal(udpOpenFailedOutcome('E_UPSTREAM_CONNECT_FAILED').status, 520);
});

test("docs/errors.md's status table lists exactly the outcome table's rows", () => {
  const md = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const section = md.slice(md.indexOf('## Event status codes'));
  const rows = section
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l))
    .map((l) => l.split('|').map((c) => c.trim()))
    .map((c) => ({ status: Number(c[1]), event: c[2]!.replace(/`/g, ''), reasons: c[3]!.replace(/`/g, '').split(/,\s*/), codes: c[4]! }));
  // Every outcome has a documented row: same status, event and reason, and its code named in the row.
  for (const [name, o] of Object.entries(OUTCOMES)) {
    if (o.status === 0) continue; // no_app: no event (documented under status 0, `connect`)
    const row = rows.find((r) => r.status === o.status && r.event === o.event && r.reasons.includes(o.reason));
    assert.ok(row, `outcome ${name} (${o.status} ${o.event} ${o.reason}) has no row in docs/errors.md`);
    assert.ok(o.code === '' || row.codes.includes(o.code) || (o.code.startsWith('E_PP_') && row.codes.includes('E_PP_')) || (o.code.startsWith('E_TLS_ORIGIN_CERT_') && row.codes.includes('E_TLS_ORIGIN_CERT_')), `${name}: ${o.code} not in "${row.codes}"`);
  }
  // Every documented closing row is an outcome.
  for (const r of rows) {
    if (r.status === 0) continue;
    for (const reason of r.reasons) {
      assert.ok(
        Object.values(OUTCOMES).some((o) => o.status === r.status && o.event === r.event && o.reason === reason),
        `docs/errors.md documents ${r.status} ${r.event} ${reason}, which no outcome produces`,
      );
    }
  }
});
