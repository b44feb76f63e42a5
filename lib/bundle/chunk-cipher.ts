// The per-chunk cipher of an encrypted sparse bundle (reference §6): each band file is a run of
// chunks (512 bytes in hdiutil's tokens), chunk k of every band encrypted alone with
//
//   IV(k) = first 16 bytes of HMAC-SHA1(hmacKey, uint32_be(k))      (k restarts at 0 in every band)
//   cipher[k] = AES-CBC(aesKey, IV(k), plain[k])                     (no padding)
//
// Because the numbers restart per band, the same few thousand IVs serve every band: they are
// computed once and kept. A run of chunks is one CBC stream in each direction, corrected by XOR at
// each chunk's first block (see decryptChunks and encryptChunks): no cipher object per chunk.

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
  readonly #ivs: Array<Buffer | undefined> = [];

  constructor(keys: BundleKeys, chunkBytes: number) {
    if (chunkBytes % AES_BLOCK_BYTES !== 0 || chunkBytes <= 0)
      throw new SbmError('SBM_INTERNAL', `chunk size ${chunkBytes} is not a whole number of AES blocks`);
    this.chunkBytes = chunkBytes;
    this.keyBits = keys.keyBits;
    this.#aesKey = Buffer.from(keys.aesKey);
    this.#hmacKey = Buffer.from(keys.hmacKey);
    this.#cbc = `aes-${keys.keyBits}-cbc`;
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
   * (same length, not overlapping) receives the plaintext. One CBC pass over the whole run with
   * IV(firstChunk) is right everywhere except the first block of each later chunk, whose chaining
   * value was the previous chunk's last ciphertext block instead of its own IV: fixed by XOR.
   */
  decryptChunks(cipherText: Uint8Array, firstChunk: number, target: Uint8Array): void {
    this.#assertWhole(cipherText.length);
    if (cipherText.length === 0) return;
    const decipher = createDecipheriv(this.#cbc, this.#aesKey, this.ivOf(firstChunk));
    decipher.setAutoPadding(false);
    target.set(decipher.update(cipherText), 0);
    decipher.final();
    for (let start = this.chunkBytes, chunk = firstChunk + 1; start < cipherText.length; start += this.chunkBytes, chunk++) {
      const iv = this.ivOf(chunk);
      for (let index = 0; index < AES_BLOCK_BYTES; index++) {
        const wrongChain = cipherText[start - AES_BLOCK_BYTES + index] as number;
        target[start + index] = (target[start + index] as number) ^ wrongChain ^ (iv[index] as number);
      }
    }
  }

  /**
   * Encrypts whole chunks, numbered from firstChunk; returns the ciphertext (a new buffer). One CBC
   * stream for the run: before each later chunk, its first plaintext block is XORed with the
   * stream's chaining value (the last ciphertext block) and the chunk's own IV, so the stream
   * chains from IV(k) as a fresh cipher would.
   */
  encryptChunks(plainText: Uint8Array, firstChunk: number): Buffer {
    this.#assertWhole(plainText.length);
    const out = Buffer.allocUnsafe(plainText.length);
    if (plainText.length === 0) return out;
    const cipher = createCipheriv(this.#cbc, this.#aesKey, this.ivOf(firstChunk));
    cipher.setAutoPadding(false);
    const chunk = Buffer.allocUnsafe(this.chunkBytes);
    for (let offset = 0, number = firstChunk; offset < plainText.length; offset += this.chunkBytes, number++) {
      chunk.set(plainText.subarray(offset, offset + this.chunkBytes));
      if (offset > 0) {
        const iv = this.ivOf(number);
        for (let index = 0; index < AES_BLOCK_BYTES; index++) {
          const chain = out[offset - AES_BLOCK_BYTES + index] as number;
          chunk[index] = (chunk[index] as number) ^ chain ^ (iv[index] as number);
        }
      }
      // CBC without padding returns every whole block at once: the chaining value is known next turn.
      cipher.update(chunk).copy(out, offset);
    }
    cipher.final();
    return out;
  }

  #assertWhole(length: number): void {
    if (length % this.chunkBytes !== 0)
      throw new SbmError('SBM_INTERNAL', `${length} bytes is not a whole number of ${this.chunkBytes}-byte chunks`);
  }
}
