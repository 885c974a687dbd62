import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateConfig } from '../../../src/model/config.ts';
import { validateApp } from '../../../src/model/app.ts';
import { ERRORS, isErrorCode } from '../../../src/model/errors.ts';
import { type ConfigIssue } from '../../../src/model/types.ts';
import { validAppArb, validConfigArb } from './arbitraries.ts';
import { pointsIntoInput } from './pointers.ts';

function assertWellFormed(input: unknown, issues: readonly ConfigIssue[]): void {
  assert.ok(issues.length > 0, 'a failed validation lists at least one issue');
  for (const i of issues) {
    assert.ok(isErrorCode(i.code), `unknown code ${String(i.code)}`);
    assert.equal(ERRORS[i.code].source, 'config', `${i.code} is not a config code`);
    assert.equal(i.cfCode, (ERRORS[i.code] as { cfCode?: number }).cfCode);
    assert.ok(pointsIntoInput(input, i.pointer), `pointer ${i.pointer} (${i.code}) is not in the input`);
  }
}

/** Every path (as tokens) to a value inside `v`, the root excluded. */
function paths(v: unknown, prefix: string[] = []): string[][] {
  if (typeof v !== 'object' || v === null) return [];
  return Object.keys(v).flatMap((k) => [[...prefix, k], ...paths((v as Record<string, unknown>)[k], [...prefix, k])]);
}

type Mutation = 'replace' | 'delete' | 'addKey' | 'nearMiss';
const NEAR_MISSES: unknown[] = [0, -1, 1.5, 65_536, '', 'x', 'tcp/0', 'udp://1.2.3.4:1', null, [], {}, true, [null], { a: 1 }];

function mutate(config: Record<string, unknown>, pick: number, kind: Mutation, value: unknown, near: number): unknown {
  const copy = structuredClone(config);
  const all = paths(copy);
  const path = all[pick % Math.max(all.length, 1)];
  if (path === undefined) return { ...copy, unexpected: value };
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], copy) as Record<string, unknown>;
  const key = path[path.length - 1] ?? '';
  switch (kind) {
    case 'replace':
      parent[key] = value;
      break;
    case 'nearMiss':
      parent[key] = NEAR_MISSES[near % NEAR_MISSES.length];
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 'addKey': {
      const target = parent[key];
      if (typeof target === 'object' && target !== null && !Array.isArray(target)) (target as Record<string, unknown>)['zz_unknown'] = value;
      else parent[key] = { zz_unknown: value };
      break;
    }
  }
  return copy;
}

void describe('config validation (properties)', () => {
  void it('accepts every generated valid config, deep-frozen', () => {
    fc.assert(
      fc.property(validConfigArb, (raw) => {
        const r = validateConfig(raw);
        assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
        assert.ok(Object.isFrozen(r.config.apps) && r.config.apps.every((a) => Object.isFrozen(a.spec)));
      }),
      { numRuns: 200 },
    );
  });

  void it('never throws on arbitrary input and only reports coded issues with pointers into the input', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withBoxedValues: true, maxDepth: 4 }), (raw) => {
        const r = validateConfig(raw);
        if (!r.ok) assertWellFormed(raw, r.issues);
        const a = validateApp(raw, '');
        if (!a.ok) assertWellFormed(raw, a.issues);
      }),
      { numRuns: 500 },
    );
  });

  void it('never throws on arbitrary apps and sections inside a config', () => {
    const any = fc.anything({ maxDepth: 3 });
    fc.assert(
      fc.property(fc.record({ apps: fc.array(any, { maxLength: 3 }), edge: any, origins: fc.array(any, { maxLength: 2 }) }), (raw) => {
        const r = validateConfig(raw);
        if (!r.ok) assertWellFormed(raw, r.issues);
      }),
      { numRuns: 300 },
    );
  });

  void it('a valid config with one field mutated never throws and reports only coded issues with pointers into the input', () => {
    fc.assert(
      fc.property(
        validConfigArb,
        fc.nat(),
        fc.constantFrom<Mutation>('replace', 'delete', 'addKey', 'nearMiss'),
        fc.anything({ maxDepth: 2 }),
        fc.nat(),
        (config, pick, kind, value, near) => {
          const raw = mutate(config, pick, kind, value, near);
          const r = validateConfig(raw);
          if (!r.ok) assertWellFormed(raw, r.issues);
        },
      ),
      { numRuns: 500 },
    );
  });

  void it('validating one app never throws on a valid app with one field mutated', () => {
    fc.assert(
      fc.property(validAppArb(), fc.nat(), fc.constantFrom<Mutation>('replace', 'delete', 'addKey', 'nearMiss'), fc.anything({ maxDepth: 2 }), fc.nat(), (app, pick, kind, value, near) => {
        const raw = mutate(app, pick, kind, value, near);
        const r = validateApp(raw, '');
        if (!r.ok) assertWellFormed(raw, r.issues);
      }),
      { numRuns: 500 },
    );
  });
});
