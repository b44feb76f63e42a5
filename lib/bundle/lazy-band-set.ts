// LazyBandSet: the set of present band indexes, filled by a synchronous listing on first use.
// It is a real Set (the band store and snapshot code take Set<number>), so every reader and
// writer of it goes through one of the overrides below, and each lists bands/ first if nobody
// has yet. Additions and deletions made after the listing are kept as on any Set.

export class LazyBandSet extends Set<number> {
  #list: (() => Iterable<number>) | undefined;

  constructor(list: () => Iterable<number>) {
    super();
    this.#list = list;
  }

  /** True once bands/ has been listed (nothing has been read or changed before that). */
  get listed(): boolean {
    return this.#list === undefined;
  }

  /** The number of bands when already listed, without listing. */
  sizeIfListed(): number | undefined {
    return this.#list === undefined ? super.size : undefined;
  }

  override has(bandIndex: number): boolean {
    this.fill();
    return super.has(bandIndex);
  }

  override add(bandIndex: number): this {
    this.fill();
    return super.add(bandIndex);
  }

  override delete(bandIndex: number): boolean {
    this.fill();
    return super.delete(bandIndex);
  }

  override clear(): void {
    this.#list = undefined; // nothing to list: the answer is empty either way
    super.clear();
  }

  override forEach(callback: (value: number, key: number, set: Set<number>) => void, thisArg?: unknown): void {
    this.fill();
    super.forEach(callback, thisArg);
  }

  override entries(): SetIterator<[number, number]> {
    this.fill();
    return super.entries();
  }

  override keys(): SetIterator<number> {
    this.fill();
    return super.keys();
  }

  override values(): SetIterator<number> {
    this.fill();
    return super.values();
  }

  override [Symbol.iterator](): SetIterator<number> {
    this.fill();
    return super[Symbol.iterator]();
  }

  private fill(): void {
    const list = this.#list;
    if (list === undefined) return;
    this.#list = undefined;
    // A failed listing is retried by the next use rather than leaving the set wrongly empty.
    try {
      for (const bandIndex of list()) super.add(bandIndex);
    } catch (error) {
      this.#list = list;
      super.clear();
      throw error;
    }
  }
}

// `size` is an accessor on Set.prototype that TypeScript declares as a property, so it cannot be
// overridden with `get size()` in the class body; define the accessor on the prototype instead.
Object.defineProperty(LazyBandSet.prototype, 'size', {
  configurable: true,
  get(this: LazyBandSet): number {
    this.values(); // lists when needed
    return Reflect.get(Set.prototype, 'size', this) as number;
  },
});
