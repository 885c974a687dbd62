/**
 * A hot stream with the part of an RxJS `Subject` that the engine's input streams, the decision trace and the
 * Spectrum events use (`next`,
 * `complete`, `observed`, late subscribers see only what comes after), delivering each value with a plain loop.
 *
 * Why not a Subject: Node loads RxJS's CommonJS build, compiled to ES5, whose `Subject.next` runs every value through
 * a closure (`errorContext`) and an ES5 iterator helper over the observers (an iterator object and a result object
 * per observer): several objects per value, and a connection lifecycle has about ten machine inputs, seven trace
 * records and two events. What
 * subscribers get is the same: each subscribes through a real `Observable` and receives through its own
 * `Subscriber` (so an error thrown by a handler is reported as RxJS reports it), in subscription order, over a
 * snapshot of the subscribers taken per value (one that subscribes or unsubscribes during a `next` is not affected
 * by it until the next value).
 */
import { Observable, type Subscriber } from 'rxjs';

/** A HotStream's subscribers and whether it completed (kept apart so the Observable's subscribe function can reach it). */
interface HotState<T> {
  /** Replaced, never changed in place: a `next` in progress keeps iterating the array it started with. */
  observers: ReadonlyArray<Subscriber<T>>;
  completed: boolean;
}

function subscribeTo<T>(state: HotState<T>, subscriber: Subscriber<T>): (() => void) | undefined {
  if (state.completed) {
    subscriber.complete();
    return undefined;
  }
  state.observers = [...state.observers, subscriber];
  return () => {
    state.observers = state.observers.filter((s) => s !== subscriber);
  };
}

/** An Observable to subscribe to, and the `next`/`complete` of its source. */
export class HotStream<T> extends Observable<T> {
  readonly #state: HotState<T>;

  constructor() {
    const state: HotState<T> = { observers: [], completed: false };
    super((subscriber) => subscribeTo(state, subscriber));
    this.#state = state;
  }

  /** True while anyone is subscribed. */
  get observed(): boolean {
    return this.#state.observers.length > 0;
  }

  next(value: T): void {
    const observers = this.#state.observers;
    for (let i = 0; i < observers.length; i++) observers[i]!.next(value);
  }

  /** Completes every subscriber; later values go nowhere, later subscribers complete at once. */
  complete(): void {
    const state = this.#state;
    if (state.completed) return;
    state.completed = true;
    const observers = state.observers;
    state.observers = [];
    for (const s of observers) s.complete();
  }
}
