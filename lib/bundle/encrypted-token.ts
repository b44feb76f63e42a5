// Reading, unlocking and writing the `encrcdsa` v2 token of an encrypted sparse bundle
// (../shared/reference/encrypted-sparsebundle.md §3–§5):
//
//   password --PBKDF2-HMAC-SHA1(salt, iterations, 24 bytes)--> kek
//   blob --3DES-EDE-CBC-decrypt(kek, blobIv)--> aesKey || hmacKey(20) || "CKIE\0" || PKCS#7 padding
//
// The token is hostile input: every field is checked against the values hdiutil writes (or a
// bound) before any of it is used, and failures are SBM_CORRUPT naming the field. A password that
// does not unwrap any passphrase record is SBM_BAD_PASSWORD. Neither the password nor the
// unwrapped keys are ever written anywhere: a new token stores only the wrapped blob.

import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { toSafeInteger } from '../binary-layout.js';
import { SbmError } from '../errors.js';
import {
  BLOB_IV_BYTES,
  BLOCK_IV_BYTES,
  CSSM_ALGID_3DES_3KEY_EDE,
  CSSM_ALGID_AES,
  CSSM_ALGID_PKCS5_PBKDF2,
  CSSM_ALGID_SHA1HMAC,
  CSSM_ALGMODE_CBCPADIV8,
  CSSM_ALGMODE_CBC_IV8,
  CSSM_PADDING_PKCS7,
  DEFAULT_CHUNK_BYTES,
  ENCRCDSA_HEADER,
  ENCRCDSA_TOKEN_BYTES,
  ENCRCDSA_VERSION,
  HMAC_KEY_BITS,
  HMAC_KEY_BYTES,
  KEK_BITS,
  KEK_BYTES,
  KEY_DATA_SUFFIX,
  KEY_RECORD_PASSPHRASE,
  KEY_RECORD_POINTER,
  MAX_ITERATIONS,
  MAX_KEY_RECORDS,
  PASSPHRASE_RECORD,
  PASSPHRASE_RECORD_OFFSET,
  SALT_BYTES,
} from './encrypted-token-layout.js';

const pbkdf2Async = promisify(pbkdf2);

export type AesKeyBits = 128 | 256;

/** The keys a password unlocks; held in memory only. */
export interface BundleKeys {
  readonly keyBits: AesKeyBits;
  readonly aesKey: Buffer;
  readonly hmacKey: Buffer;
}

interface PassphraseRecord {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly blobIv: Buffer;
  readonly blob: Buffer;
}

/** What a token says, checked; unlocking it needs the password. */
export interface EncryptedToken {
  readonly keyBits: AesKeyBits;
  /** Bytes per encrypted chunk (512 in every hdiutil token). */
  readonly chunkBytes: number;
  readonly uuid: Buffer;
  readonly passphraseRecords: readonly PassphraseRecord[];
  /** Types of the records sbm cannot use (2 = certificate, 3 = keybag). */
  readonly otherRecordTypes: readonly number[];
}

function corrupt(where: string, detail: string): SbmError {
  return new SbmError('SBM_CORRUPT', `${where}: encrypted-bundle token ${detail}`, { path: where });
}

function expect(where: string, field: string, value: number, allowed: readonly number[]): void {
  if (!allowed.includes(value)) throw corrupt(where, `has ${field} ${value} (sbm knows ${allowed.join(' or ')})`);
}

/** Parses and checks a token's header and key records. `where` names the file in errors. */
export function parseEncryptedToken(token: Buffer, where: string): EncryptedToken {
  const header = ENCRCDSA_HEADER.decode(token, 0, where);
  expect(where, 'version', header.version, [ENCRCDSA_VERSION]);
  expect(where, 'block IV length', header.blockIvLen, [BLOCK_IV_BYTES]);
  expect(where, 'block mode', header.blockMode, [CSSM_ALGMODE_CBC_IV8]);
  expect(where, 'block algorithm', header.blockAlgorithm, [CSSM_ALGID_AES]);
  expect(where, 'key bits', header.keyBits, [128, 256]);
  expect(where, 'IV key algorithm', header.ivKeyAlgorithm, [CSSM_ALGID_SHA1HMAC]);
  expect(where, 'IV key bits', header.ivKeyBits, [HMAC_KEY_BITS]);
  const chunkBytes = header.bytesPerBlock;
  // A power of two from 512 up: a whole number of AES blocks that divides every band size.
  if (chunkBytes < DEFAULT_CHUNK_BYTES || chunkBytes > 1024 * 1024 || (chunkBytes & (chunkBytes - 1)) !== 0)
    throw corrupt(where, `has a chunk size of ${chunkBytes} bytes (expected a power of two from 512 to 1 MiB)`);
  const count = header.keyRecordCount;
  if (count < 1 || count > MAX_KEY_RECORDS) throw corrupt(where, `has ${count} key records (expected 1 to ${MAX_KEY_RECORDS})`);
  if (ENCRCDSA_HEADER.sizeBytes + count * KEY_RECORD_POINTER.sizeBytes > token.length)
    throw corrupt(where, `is too short for its ${count} key records`);
  const passphraseRecords: PassphraseRecord[] = [];
  const otherRecordTypes: number[] = [];
  for (let index = 0; index < count; index++) {
    const pointer = KEY_RECORD_POINTER.decode(token, ENCRCDSA_HEADER.sizeBytes + index * KEY_RECORD_POINTER.sizeBytes, where);
    const offset = toSafeInteger(pointer.offset, `key record ${index} offset`, where);
    const length = toSafeInteger(pointer.length, `key record ${index} length`, where);
    if (offset + length > token.length || length === 0) throw corrupt(where, `key record ${index} lies outside the token`);
    if (pointer.type !== KEY_RECORD_PASSPHRASE) {
      otherRecordTypes.push(pointer.type);
      continue;
    }
    passphraseRecords.push(parsePassphraseRecord(token.subarray(offset, offset + length), index, where));
  }
  return { keyBits: header.keyBits as AesKeyBits, chunkBytes, uuid: Buffer.from(header.uuid), passphraseRecords, otherRecordTypes };
}

function parsePassphraseRecord(bytes: Buffer, index: number, where: string): PassphraseRecord {
  const blobStart = PASSPHRASE_RECORD.offsetOf('encryptedKeyblob');
  if (bytes.length < blobStart) throw corrupt(where, `key record ${index} is ${bytes.length} bytes, too short for a passphrase record`);
  // Decoded from a zero-padded copy: a record may end right after its blob.
  const padded = Buffer.alloc(PASSPHRASE_RECORD.sizeBytes);
  bytes.copy(padded, 0, 0, Math.min(bytes.length, padded.length));
  const record = PASSPHRASE_RECORD.decode(padded, 0, where);
  const what = `key record ${index}`;
  expect(where, `${what} KDF`, record.kdfAlgorithm, [CSSM_ALGID_PKCS5_PBKDF2]);
  expect(where, `${what} key-wrap algorithm`, record.blobEncAlgorithm, [CSSM_ALGID_3DES_3KEY_EDE]);
  expect(where, `${what} key-wrap padding`, record.blobEncPadding, [CSSM_PADDING_PKCS7]);
  expect(where, `${what} key-wrap mode`, record.blobEncMode, [CSSM_ALGMODE_CBCPADIV8]);
  expect(where, `${what} key-wrap key bits`, record.blobEncKeyBits, [KEK_BITS]);
  expect(where, `${what} key-wrap IV length`, record.blobEncIvLen, [BLOB_IV_BYTES]);
  if (record.kdfIterationCount < 1 || record.kdfIterationCount > MAX_ITERATIONS)
    throw corrupt(where, `${what} asks for ${record.kdfIterationCount} PBKDF2 iterations (sbm accepts 1 to ${MAX_ITERATIONS})`);
  if (record.kdfSaltLen < 1 || record.kdfSaltLen > record.kdfSalt.length)
    throw corrupt(where, `${what} has a salt of ${record.kdfSaltLen} bytes (expected 1 to ${record.kdfSalt.length})`);
  const blobLength = record.encryptedKeyblobLen;
  if (blobLength < 8 || blobLength % 8 !== 0 || blobLength > record.encryptedKeyblob.length || blobStart + blobLength > bytes.length)
    throw corrupt(where, `${what} has a wrapped key of ${blobLength} bytes (expected a multiple of 8 inside the record)`);
  return {
    iterations: record.kdfIterationCount,
    salt: Buffer.from(record.kdfSalt.subarray(0, record.kdfSaltLen)),
    blobIv: Buffer.from(record.blobEncIv.subarray(0, BLOB_IV_BYTES)),
    blob: Buffer.from(record.encryptedKeyblob.subarray(0, blobLength)),
  };
}

/**
 * The keys of the first passphrase record the password unwraps. SBM_UNSUPPORTED when the token
 * has no passphrase record (certificate or keybag only), SBM_BAD_PASSWORD when none unwraps.
 */
export async function unlockToken(token: EncryptedToken, password: Uint8Array, where: string): Promise<BundleKeys> {
  if (token.passphraseRecords.length === 0) {
    throw new SbmError(
      'SBM_UNSUPPORTED',
      `${where}: the bundle is unlocked by a certificate or keybag (key record types ${token.otherRecordTypes.join(', ')}), not a password`,
      { path: where },
    );
  }
  for (const record of token.passphraseRecords) {
    const keys = await unwrapRecord(record, password, token.keyBits);
    if (keys !== undefined) return keys;
  }
  throw new SbmError('SBM_BAD_PASSWORD', `${where}: wrong password (it does not unlock the bundle's key)`, { path: where });
}

async function unwrapRecord(record: PassphraseRecord, password: Uint8Array, keyBits: AesKeyBits): Promise<BundleKeys | undefined> {
  const kek = await pbkdf2Async(password, record.salt, record.iterations, KEK_BYTES, 'sha1');
  const decipher = createDecipheriv('des-ede3-cbc', kek, record.blobIv);
  decipher.setAutoPadding(false); // checked below: a bad pad is a wrong password, not an exception
  const padded = Buffer.concat([decipher.update(record.blob), decipher.final()]);
  const pad = padded[padded.length - 1] ?? 0;
  if (pad < 1 || pad > 8 || !padded.subarray(padded.length - pad).every((byte) => byte === pad)) return undefined;
  const keyData = padded.subarray(0, padded.length - pad);
  const aesBytes = keyBits / 8;
  if (keyData.length < aesBytes + HMAC_KEY_BYTES + KEY_DATA_SUFFIX.length) return undefined;
  if (!keyData.subarray(keyData.length - KEY_DATA_SUFFIX.length).equals(KEY_DATA_SUFFIX)) return undefined;
  return {
    keyBits,
    aesKey: Buffer.from(keyData.subarray(0, aesBytes)),
    hmacKey: Buffer.from(keyData.subarray(aesBytes, aesBytes + HMAC_KEY_BYTES)),
  };
}

export interface NewTokenOptions {
  readonly keyBits: AesKeyBits;
  readonly password: Uint8Array;
  readonly iterations: number;
}

/** PBKDF2 iterations of a new token: hdiutil calibrates to about this many on current Macs. */
export const DEFAULT_NEW_TOKEN_ITERATIONS = 250_000;

/**
 * A new token in hdiutil's exact layout (0x1DE00 bytes, one passphrase record at 0x60) with fresh
 * random keys, salt, IV and UUID. Returns the token and the keys it wraps.
 */
export async function buildEncryptedToken(options: NewTokenOptions): Promise<{ token: Buffer; keys: BundleKeys }> {
  if (!Number.isInteger(options.iterations) || options.iterations < 1 || options.iterations > MAX_ITERATIONS)
    throw new SbmError('SBM_INVALID_ARGUMENT', `PBKDF2 iterations must be 1..${MAX_ITERATIONS}, not ${options.iterations}`);
  const keys: BundleKeys = { keyBits: options.keyBits, aesKey: randomBytes(options.keyBits / 8), hmacKey: randomBytes(HMAC_KEY_BYTES) };
  const token = await wrapKeys(keys, options.password, options.iterations, {
    salt: randomBytes(SALT_BYTES),
    blobIv: randomBytes(BLOB_IV_BYTES),
    uuid: randomBytes(16),
  });
  return { token, keys };
}

/** The token bytes for given keys and random inputs (deterministic: tests rebuild hdiutil's own token). */
export async function wrapKeys(
  keys: BundleKeys,
  password: Uint8Array,
  iterations: number,
  random: { readonly salt: Buffer; readonly blobIv: Buffer; readonly uuid: Buffer },
): Promise<Buffer> {
  const keyData = Buffer.concat([keys.aesKey, keys.hmacKey, KEY_DATA_SUFFIX]);
  const pad = 8 - (keyData.length % 8);
  const kek = await pbkdf2Async(password, random.salt, iterations, KEK_BYTES, 'sha1');
  const cipher = createCipheriv('des-ede3-cbc', kek, random.blobIv);
  cipher.setAutoPadding(false);
  const blob = Buffer.concat([cipher.update(Buffer.concat([keyData, Buffer.alloc(pad, pad)])), cipher.final()]);
  const token = Buffer.alloc(ENCRCDSA_TOKEN_BYTES);
  ENCRCDSA_HEADER.encode(
    {
      signature: Buffer.from('encrcdsa', 'latin1'),
      version: ENCRCDSA_VERSION,
      blockIvLen: BLOCK_IV_BYTES,
      blockMode: CSSM_ALGMODE_CBC_IV8,
      blockAlgorithm: CSSM_ALGID_AES,
      keyBits: keys.keyBits,
      ivKeyAlgorithm: CSSM_ALGID_SHA1HMAC,
      ivKeyBits: HMAC_KEY_BITS,
      uuid: random.uuid,
      bytesPerBlock: DEFAULT_CHUNK_BYTES,
      dataLen: 0n,
      offsetToDataStart: BigInt(ENCRCDSA_TOKEN_BYTES),
      keyRecordCount: 1,
    },
    token,
  );
  KEY_RECORD_POINTER.encode(
    { type: KEY_RECORD_PASSPHRASE, offset: BigInt(PASSPHRASE_RECORD_OFFSET), length: BigInt(PASSPHRASE_RECORD.sizeBytes) },
    token,
    ENCRCDSA_HEADER.sizeBytes,
  );
  PASSPHRASE_RECORD.encode(
    {
      kdfAlgorithm: CSSM_ALGID_PKCS5_PBKDF2,
      kdfPrngAlgorithm: 0,
      kdfIterationCount: iterations,
      kdfSaltLen: random.salt.length,
      kdfSalt: random.salt,
      blobEncIvLen: random.blobIv.length,
      blobEncIv: random.blobIv,
      blobEncKeyBits: KEK_BITS,
      blobEncAlgorithm: CSSM_ALGID_3DES_3KEY_EDE,
      blobEncPadding: CSSM_PADDING_PKCS7,
      blobEncMode: CSSM_ALGMODE_CBCPADIV8,
      encryptedKeyblobLen: blob.length,
      encryptedKeyblob: blob,
    },
    token,
    PASSPHRASE_RECORD_OFFSET,
  );
  return token;
}
