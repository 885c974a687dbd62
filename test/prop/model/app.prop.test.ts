import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateApp } from '../../../src/model/app.ts';
import { mapPort } from '../../../src/core/port-map.ts';
import { portCount } from '../../../src/model/ports.ts';
import { validAppArb } from './arbitraries.ts';

void describe('app validation (properties)', () => {
  void it('a valid app round-trips: validate, take its spec, validate again gives the same AppSpec', () => {
    fc.assert(
      fc.property(validAppArb(), (raw) => {
        const first = validateApp(raw);
        assert.ok(first.ok, first.ok ? '' : JSON.stringify(first.issues));
        const again = validateApp(first.app.spec);
        assert.ok(again.ok, again.ok ? '' : JSON.stringify(again.issues));
        assert.deepEqual(again.app, first.app);
        // The spec survives JSON (what the REST API sends), too.
        const viaJson = validateApp(JSON.parse(JSON.stringify(first.app.spec)));
        assert.ok(viaJson.ok);
        assert.deepEqual(viaJson.app, first.app);
      }),
      { numRuns: 300 },
    );
  });

  void it('every edge port of a valid app maps to a valid origin port', () => {
    fc.assert(
      fc.property(validAppArb(), fc.nat(), (raw, k) => {
        const r = validateApp(raw);
        assert.ok(r.ok);
        const { edgePorts, origin } = r.app;
        const port = edgePorts.start + (k % portCount(edgePorts));
        const targets = origin.kind === 'direct' ? origin.targets.map((t) => t.ports) : origin.ports === undefined ? [] : [origin.ports];
        for (const t of targets) {
          const p = mapPort(edgePorts, t, port);
          assert.ok(p >= t.start && p <= t.end);
        }
      }),
      { numRuns: 300 },
    );
  });
});
