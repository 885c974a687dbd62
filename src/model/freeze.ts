/** Recursively readonly view of a value (what `deepFreeze` returns). */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends readonly (infer U)[]
    ? readonly DeepReadonly<U>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

/**
 * Freezes `value` and every object reachable from it through own properties, in place, and returns it. Validated
 * configuration is frozen once at the boundary (fastify's habit) so no later stage can change what was checked.
 * Cycles and already-frozen objects are fine; only plain data is expected (no Maps, class instances with state).
 */
export function deepFreeze<T>(value: T): DeepReadonly<T> {
  const stack: unknown[] = [value];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    Object.freeze(v);
    for (const key of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, key);
      if (d !== undefined && 'value' in d) stack.push(d.value);
    }
  }
  return value as DeepReadonly<T>;
}
