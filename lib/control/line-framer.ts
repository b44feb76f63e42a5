// Splits a byte stream into newline-terminated lines, bounded: sans-IO, the socket glue feeds
// chunks in and gets whole lines (without the newline) out. Bytes of a line are kept as a chunk
// list and joined once when the newline arrives.

export interface FramedLines {
  readonly lines: string[];
  /** A line grew past the bound; the stream cannot be resynchronised and must be closed. */
  readonly overflow: boolean;
}

export class LineFramer {
  #chunks: Buffer[] = [];
  #length = 0;
  #overflowed = false;

  constructor(readonly maxLineBytes: number) {}

  push(chunk: Buffer): FramedLines {
    const lines: string[] = [];
    if (this.#overflowed) return { lines, overflow: true };
    let start = 0;
    for (let newline = chunk.indexOf(0x0a, start); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      if (!this.#append(chunk.subarray(start, newline))) return { lines, overflow: true };
      lines.push((this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#length)).toString('utf8'));
      this.#chunks = [];
      this.#length = 0;
      start = newline + 1;
    }
    if (!this.#append(chunk.subarray(start))) return { lines, overflow: true };
    return { lines, overflow: false };
  }

  #append(piece: Buffer): boolean {
    if (this.#length + piece.length > this.maxLineBytes) {
      this.#overflowed = true;
      this.#chunks = [];
      this.#length = 0;
      return false;
    }
    this.#chunks.push(piece);
    this.#length += piece.length;
    return true;
  }
}
