// The per-chunk cipher of an encrypted sparse bundle (reference §6): each band file is a run of
// chunks (512 bytes in hdiutil's tokens), chunk k of every band encrypted alone with
//
//   IV(k) = first 16 bytes of HMAC-SHA1(hmacKey, uint32_be(k))      (k restarts at 0 in every band)
//   cipher[k] = AES-CBC(aesKey, IV(k), plain[k])                     (no padding)
//
// Because the numbers restart per band, the same few thousand IVs serve every band: they are
// computed once and kept. Decryption of a run of chunks is one AES-ECB call plus the CBC XOR
// (every block's chaining value is the previous ciphertext block, or IV(k) at a chunk's start);
// encryption is sequential by nature, one CBC call per chunk.

import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { SbmError } from '../errors.js';
import type { BundleKeys } from './encrypted-token.js';

const AES_BLOCK_BYTES = 16;
/** IVs kept for chunk numbers below this (1 MiB of IVs: 8 GiB bands of 512-byte chunks need 16M, computed as needed). */
const IV_CACHE_CHUNKS = 65536;

export class ChunkCipher {
  readonly chunkBytes: number;
  readonly keyBits: number;
  readonly #aesKey: Buffer;
  readonly #hmacKey: Buffer;
  readonly #cbc: string;
  readonly #ecb: string;
  readonly #ivs: Array<Buffer | undefined> = [];

  constructor(keys: BundleKeys, chunkBytes: number) {
    if (chunkBytes % AES_BLOCK_BYTES !== 0 || chunkBytes <= 0)
      throw new SbmError('SBM_INTERNAL', `chunk size ${chunkBytes} is not a whole number of AES blocks`);
    this.chunkBytes = chunkBytes;
    this.keyBits = keys.keyBits;
    this.#aesKey = Buffer.from(keys.aesKey);
    this.#hmacKey = Buffer.from(keys.hmacKey);
    this.#cbc = `aes-${keys.keyBits}-cbc`;
    this.#ecb = `aes-${keys.keyBits}-ecb`;
  }

  /** IV(k): the first 16 bytes of HMAC-SHA1(hmacKey, k as a big-endian u32). */
  ivOf(chunkNumber: number): Buffer {
    const cached = this.#ivs[chunkNumber];
    if (cached !== undefined) return cached;
    const number = Buffer.alloc(4);
    number.writeUInt32BE(chunkNumber >>> 0);
    const iv = createHmac('sha1', this.#hmacKey).update(number).digest().subarray(0, AES_BLOCK_BYTES);
    if (chunkNumber < IV_CACHE_CHUNKS) this.#ivs[chunkNumber] = iv;
    return iv;
  }

  /**
   * Decrypts whole chunks: `cipherText` holds chunks firstChunk, firstChunk+1, ... and `target`
   * (same length, not overlapping) receives the plaintext.
   */
  decryptChunks(cipherText: Uint8Array, firstChunk: number, target: Uint8Array): void {
    this.#assertWhole(cipherText.length);
    if (cipherText.length === 0) return;
    const decipher = createDecipheriv(this.#ecb, this.#aesKey, null);
    decipher.setAutoPadding(false);
    const blocks = decipher.update(cipherText);
    target.set(blocks, 0);
    decipher.final();
    const blocksPerChunk = this.chunkBytes / AES_BLOCK_BYTES;
    const count = cipherText.length / AES_BLOCK_BYTES;
    for (let block = 0; block < count; block++) {
      const start = block * AES_BLOCK_BYTES;
      const inChunk = block % blocksPerChunk;
      const chain = inChunk === 0 ? this.ivOf(firstChunk + block / blocksPerChunk) : cipherText.subarray(start - AES_BLOCK_BYTES, start);
      for (let index = 0; index < AES_BLOCK_BYTES; index++)
        target[start + index] = (target[start + index] as number) ^ (chain[index] as number);
    }
  }

  /** Encrypts whole chunks, numbered from firstChunk; returns the ciphertext (a new buffer). */
  encryptChunks(plainText: Uint8Array, firstChunk: number): Buffer {
    this.#assertWhole(plainText.length);
    const out = Buffer.allocUnsafe(plainText.length);
    for (let offset = 0, chunk = firstChunk; offset < plainText.length; offset += this.chunkBytes, chunk++) {
      const cipher = createCipheriv(this.#cbc, this.#aesKey, this.ivOf(chunk));
      cipher.setAutoPadding(false);
      const written = cipher.update(plainText.subarray(offset, offset + this.chunkBytes));
      written.copy(out, offset);
      cipher.final();
    }
    return out;
  }

  #assertWhole(length: number): void {
    if (length % this.chunkBytes !== 0)
      throw new SbmError('SBM_INTERNAL', `${length} bytes is not a whole number of ${this.chunkBytes}-byte chunks`);
  }
}
