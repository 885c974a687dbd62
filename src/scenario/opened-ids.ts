/**
 * The connection ids a scenario's timeline opens, as the schema check sees them (src/scenario/schema.ts): each id
 * once, with when and where it is opened. Connect ids are kept one by one; a load's ids (`id_prefix` + 0 … count - 1)
 * as one range, unless an id opened before could be one of them: then they are kept one by one, and the first that
 * clashes is reported, as before. A load of 100,000 connections so costs one record instead of 100,000 map entries,
 * objects and strings while the file is checked. `get` answers as a map of every id opened so far would.
 */

/** When and where (the step's JSON pointer) an id is opened. */
export interface OpenedConn {
  readonly at: number;
  readonly pointer: string;
}

interface LoadRange {
  readonly prefix: string;
  readonly count: number;
  readonly at: number;
  readonly every: number;
  readonly pointer: string;
}

/** A load id's number as `${k}` writes it: 0, or digits without a leading zero. */
const LOAD_NUMBER = /^(?:0|[1-9][0-9]{0,14})$/;

export class OpenedIds {
  readonly #one = new Map<string, OpenedConn>();
  readonly #ranges: LoadRange[] = [];

  get(id: string): OpenedConn | undefined {
    const o = this.#one.get(id);
    if (o !== undefined) return o;
    for (const r of this.#ranges) {
      if (!id.startsWith(r.prefix)) continue;
      const rest = id.slice(r.prefix.length);
      if (!LOAD_NUMBER.test(rest)) continue;
      const k = Number(rest);
      if (k < r.count) return { at: r.at + k * r.every, pointer: r.pointer };
    }
    return undefined;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /** Opens a connect step's id (the caller has checked that it is not opened yet). */
  set(id: string, o: OpenedConn): void {
    this.#one.set(id, o);
  }

  /**
   * Opens a load's ids, connection k at `at + k × every`. Returns the clash with the lowest k (`"ID" is already
   * opened at POINTER`), if any; the ids that clash stay with their first opener, the others are opened.
   */
  openLoad(prefix: string, count: number, at: number, every: number, pointer: string): string | undefined {
    // Two ids prefix + k and p + j can be equal only when one prefix starts with the other.
    let mayClash = this.#ranges.some((r) => r.prefix.startsWith(prefix) || prefix.startsWith(r.prefix));
    if (!mayClash) {
      for (const id of this.#one.keys()) {
        if (id.startsWith(prefix)) {
          mayClash = true;
          break;
        }
      }
    }
    if (!mayClash) {
      if (count > 0) this.#ranges.push({ prefix, count, at, every, pointer });
      return undefined;
    }
    let clash: string | undefined;
    for (let k = 0; k < count; k++) {
      const id = `${prefix}${k}`;
      const first = this.get(id);
      if (first !== undefined) clash ??= `"${id}" is already opened at ${first.pointer}`;
      else this.#one.set(id, { at: at + k * every, pointer });
    }
    return clash;
  }
}
