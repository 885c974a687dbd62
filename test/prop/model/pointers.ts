/** RFC 6901 pointer resolution for property tests: does an issue's pointer name something in the input? */
export function resolvePointer(root: unknown, pointer: string): { found: boolean; value: unknown } {
  if (pointer === '') return { found: true, value: root };
  if (!pointer.startsWith('/')) return { found: false, value: undefined };
  let cur: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, token)) return { found: false, value: undefined };
    cur = (cur as Record<string, unknown>)[token];
  }
  return { found: true, value: cur };
}

/** The pointer names an existing value, or a missing member of an existing object or array (a required field). */
export function pointsIntoInput(root: unknown, pointer: string): boolean {
  if (resolvePointer(root, pointer).found) return true;
  const cut = pointer.lastIndexOf('/');
  if (cut < 0) return false;
  const parent = resolvePointer(root, pointer.slice(0, cut));
  return parent.found && typeof parent.value === 'object' && parent.value !== null;
}
