/**
 * HotStream stands in for an RxJS Subject under the decision trace and the Spectrum events: the same script of
 * subscribes, unsubscribes (also from inside a handler), values and completion gives the same deliveries as a Subject.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { HotStream } from '../../../src/streams/hot-stream.ts';

type Op = { op: 'sub' } | { op: 'unsub'; which: number } | { op: 'next'; value: number } | { op: 'subInside'; which: number } | { op: 'unsubInside'; which: number; victim: number } | { op: 'complete' };

/** Runs `ops` against a stream; returns every delivery (`<subscriber>:<value>`, `<subscriber>:done`) and `observed` after each op. */
function play(ops: readonly Op[], make: () => { stream: Observable<number>; next(v: number): void; complete(): void; observed: boolean }): string[] {
  const s = make();
  const log: string[] = [];
  const subs: Subscription[] = [];
  /** Per subscriber: a one-shot action its handler runs at its next value (subscribe another, unsubscribe one). */
  const inside = new Map<number, () => void>();
  const subscribe = (): void => {
    const id = subs.length;
    subs.push(
      s.stream.subscribe({
        next: (v) => {
          log.push(`${id}:${v}`);
          const act = inside.get(id);
          inside.delete(id);
          act?.();
        },
        complete: () => log.push(`${id}:done`),
      }),
    );
  };
  for (const o of ops) {
    if (o.op === 'sub') subscribe();
    else if (o.op === 'unsub') subs[o.which % Math.max(1, subs.length)]?.unsubscribe();
    else if (o.op === 'next') s.next(o.value);
    else if (o.op === 'subInside') inside.set(o.which % Math.max(1, subs.length), subscribe);
    else if (o.op === 'unsubInside') {
      const victim = o.victim;
      inside.set(o.which % Math.max(1, subs.length), () => subs[victim % subs.length]?.unsubscribe());
    } else s.complete();
    log.push(`observed ${s.observed}`);
  }
  return log;
}

const viaHotStream = (): { stream: Observable<number>; next(v: number): void; complete(): void; observed: boolean } => {
  const h = new HotStream<number>();
  return {
    stream: h,
    next: (v) => h.next(v),
    complete: () => h.complete(),
    get observed() {
      return h.observed;
    },
  };
};

const viaSubject = (): { stream: Observable<number>; next(v: number): void; complete(): void; observed: boolean } => {
  const subject = new Subject<number>();
  return {
    stream: subject.asObservable(),
    next: (v) => subject.next(v),
    complete: () => subject.complete(),
    get observed() {
      return subject.observed;
    },
  };
};

test('HotStream delivers what a Subject delivers, for any script of subscribes, unsubscribes, values and completion', () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.constant({ op: 'sub' as const }),
    fc.nat(5).map((which) => ({ op: 'unsub' as const, which })),
    fc.integer({ min: 0, max: 99 }).map((value) => ({ op: 'next' as const, value })),
    fc.nat(5).map((which) => ({ op: 'subInside' as const, which })),
    fc.tuple(fc.nat(5), fc.nat(5)).map(([which, victim]) => ({ op: 'unsubInside' as const, which, victim })),
    fc.constant({ op: 'complete' as const }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      assert.deepEqual(
        play(ops, viaHotStream),
        play(ops, viaSubject),
      );
    }),
    { numRuns: 2000 },
  );
});

test('HotStream: late subscribers see only later values; after complete nothing is delivered and subscribers complete at once', () => {
  const h = new HotStream<number>();
  const seen: string[] = [];
  h.next(1);
  assert.equal(h.observed, false);
  const a = h.subscribe((v) => seen.push(`a${v}`));
  assert.equal(h.observed, true);
  h.next(2);
  h.subscribe({ next: (v) => seen.push(`b${v}`), complete: () => seen.push('b done') });
  h.next(3);
  a.unsubscribe();
  h.next(4);
  h.complete();
  h.next(5);
  h.subscribe({ complete: () => seen.push('c done') });
  assert.deepEqual(seen, ['a2', 'a3', 'b3', 'b4', 'b done', 'c done']);
  assert.equal(h.observed, false);
});
