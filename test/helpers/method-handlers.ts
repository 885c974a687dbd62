/**
 * A Conn handler set written as a class, its callbacks on the prototype and its state on the instance: the shape
 * the `setHandlers` contract (src/net/ports.ts) must call correctly, with `this` being the object given. Shared by
 * the real Conns' and the simulator's contract tests.
 */
export class NamedWatcher {
  readonly name: string;
  readonly #log: string[];
  readonly #onClose: () => void;
  constructor(name: string, log: string[], onClose: () => void = () => {}) {
    this.name = name;
    this.#log = log;
    this.#onClose = onClose;
  }
  connect(): void {
    this.#log.push(`${this.name}.connect`);
  }
  data(c: Uint8Array): void {
    this.#log.push(`${this.name}.data ${Buffer.from(c).toString()}`);
  }
  end(): void {
    this.#log.push(`${this.name}.end`);
  }
  close(hadError: boolean): void {
    this.#log.push(`${this.name}.close ${hadError}`);
    this.#onClose();
  }
}
