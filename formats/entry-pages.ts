// A block table (VDI block map, VHDX BAT) written page by page while an exporter walks the disk in
// order, so a table of any size never sits in memory whole: entries are set in increasing index
// order, every page is written exactly once (pages without a set entry get their defaults), and
// finish() writes the rest.
//
//   table at tableOffset   [ page 0 ][ page 1 ][ page 2 ] ... [ last page (short) ]
//   set(i)                  ^ pages before i's page are written once i moves past them

import type { FileHandle } from 'node:fs/promises';
import { SbmError } from '../lib/errors.js';
import { writeFully } from '../lib/fs/read-fully.js';

/** Fills `count` entries of `page` (from entry `firstIndex` of the table) with their default values. */
export type FillDefaults = (page: Buffer, firstIndex: number, count: number) => void;

const DEFAULT_PAGE_ENTRIES = 4096;

export class EntryPages {
  readonly #page: Buffer;
  readonly #pageEntries: number;
  /** First entry of the page held in #page; every page before it is written. */
  #pageStart = 0;
  #finished = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly tableOffset: number,
    private readonly entryBytes: number,
    private readonly totalEntries: number,
    private readonly fill: FillDefaults,
    pageEntries = DEFAULT_PAGE_ENTRIES,
  ) {
    this.#pageEntries = pageEntries;
    this.#page = Buffer.alloc(pageEntries * entryBytes);
    this.#fillPage();
  }

  /** Sets entry `index` (never below an index already passed) by writing its bytes into the page. */
  async set(index: number, write: (page: Buffer, at: number) => void): Promise<void> {
    if (index < this.#pageStart || index >= this.totalEntries || this.#finished) {
      throw new SbmError('SBM_INTERNAL', `table entry ${index} set out of order (page at ${this.#pageStart} of ${this.totalEntries})`);
    }
    while (index >= this.#pageStart + this.#pageEntries) await this.#writePage();
    write(this.#page, (index - this.#pageStart) * this.entryBytes);
  }

  /** Writes the current page and every later one. */
  async finish(): Promise<void> {
    while (this.#pageStart < this.totalEntries) await this.#writePage();
    this.#finished = true;
  }

  #count(): number {
    return Math.min(this.#pageEntries, this.totalEntries - this.#pageStart);
  }

  async #writePage(): Promise<void> {
    const bytes = this.#count() * this.entryBytes;
    await writeFully(this.handle, this.#page.subarray(0, bytes), this.tableOffset + this.#pageStart * this.entryBytes);
    this.#pageStart += this.#pageEntries;
    if (this.#pageStart < this.totalEntries) this.#fillPage();
  }

  #fillPage(): void {
    const count = Math.max(0, this.#count());
    this.#page.fill(0);
    this.fill(this.#page, this.#pageStart, count);
  }
}
