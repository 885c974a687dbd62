/**
 * A hot stream with the part of an RxJS `Subject` that the decision trace and the Spectrum events use (`next`,
 * `complete`, `observed`, late subscribers see only what comes after), delivering each value with a plain loop.
 *
 * Why not a Subject: Node loads RxJS's CommonJS build, compiled to ES5, whose `Subject.next` runs every value through
 * a closure (`errorContext`) and an ES5 iterator helper over the observers (an iterator object and a result object
 * per observer): several objects per value, and the runner records about ten values per connection lifecycle. What
 * subscribers get is the same: each subscribes through a real `Observable` and receives through its own
 * `Subscriber` (so an error thrown by a handler is reported as RxJS reports it), in subscription order, over a
 * snapshot of the subscribers taken per value (one that subscribes or unsubscribes during a `next` is not affected
 * by it until the next value).
 */
import { Observable, type Subscriber } from 'rxjs';

export class HotStream<T> {
  /** Replaced, never changed in place: a `next` in progress keeps iterating the array it started with. */
  #observers: ReadonlyArray<Subscriber<T>> = [];
  #completed = false;

  readonly stream: Observable<T> = new Observable<T>((subscriber) => {
    if (this.#completed) {
      subscriber.complete();
      return undefined;
    }
    this.#observers = [...this.#observers, subscriber];
    return () => {
      this.#observers = this.#observers.filter((s) => s !== subscriber);
    };
  });

  /** True while anyone is subscribed. */
  get observed(): boolean {
    return this.#observers.length > 0;
  }

  next(value: T): void {
    const observers = this.#observers;
    for (let i = 0; i < observers.length; i++) observers[i]!.next(value);
  }

  /** Completes every subscriber; later values go nowhere, later subscribers complete at once. */
  complete(): void {
    if (this.#completed) return;
    this.#completed = true;
    const observers = this.#observers;
    this.#observers = [];
    for (const s of observers) s.complete();
  }
}
