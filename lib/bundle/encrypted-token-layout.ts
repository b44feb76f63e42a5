// The `token` of an encrypted sparse bundle: Apple's `encrcdsa` v2 header (big-endian), declared
// once. Names and values are those of ../shared/reference/encrypted-sparsebundle.md §3–§4.
//
//   0x00 header (0x4C) | 0x4C key-record pointers (20 bytes each) | 0x60 passphrase record (0x268)
//   ... zeros up to ENCRCDSA_TOKEN_BYTES (0x1DE00); the bands hold ciphertext from their byte 0.

import { defineLayout } from '../binary-layout.js';

export const ENCRCDSA_SIGNATURE = 'encrcdsa';
export const ENCRCDSA_VERSION = 2;
/** Length of every token hdiutil writes (= offsetToDataStart). */
export const ENCRCDSA_TOKEN_BYTES = 0x1de00;
/** sbm reads at most this much of a token: a longer one is damage, never read whole. */
export const ENCRCDSA_TOKEN_MAX_BYTES = 1024 * 1024;

export const CSSM_ALGID_AES = 0x80000001;
export const CSSM_ALGMODE_CBC_IV8 = 5;
export const CSSM_ALGID_SHA1HMAC = 0x5b;
export const CSSM_ALGID_PKCS5_PBKDF2 = 103;
export const CSSM_ALGID_3DES_3KEY_EDE = 17;
export const CSSM_PADDING_PKCS7 = 7;
export const CSSM_ALGMODE_CBCPADIV8 = 6;

/** Key record types (cssmapple.h): 1 passphrase-wrapped key, 2 RSA-wrapped (certificate), 3 keybag. */
export const KEY_RECORD_PASSPHRASE = 1;
export const KEY_RECORD_CERTIFICATE = 2;
export const KEY_RECORD_KEYBAG = 3;

export const BLOCK_IV_BYTES = 16;
export const HMAC_KEY_BITS = 160;
export const HMAC_KEY_BYTES = 20;
/** The chunk size hdiutil writes; readers take the header's value. */
export const DEFAULT_CHUNK_BYTES = 512;
export const KEK_BYTES = 24;
export const KEK_BITS = 192;
export const BLOB_IV_BYTES = 8;
export const SALT_BYTES = 20;
/** Unwrapped key data ends with this: a wrong password fails to produce it. */
export const KEY_DATA_SUFFIX = Buffer.from('CKIE\0', 'latin1');
/** Hostile-input bounds: PBKDF2 iterations beyond this would hang an open (hdiutil calibrates ~200 000). */
export const MAX_ITERATIONS = 20_000_000;
export const MAX_KEY_RECORDS = 64;

export const ENCRCDSA_HEADER = defineLayout('encrcdsa header', 0x4c, 'be', [
  { name: 'signature', offset: 0x00, type: 'bytes', size: 8, equals: ENCRCDSA_SIGNATURE },
  { name: 'version', offset: 0x08, type: 'u32' },
  { name: 'blockIvLen', offset: 0x0c, type: 'u32' },
  { name: 'blockMode', offset: 0x10, type: 'u32' },
  { name: 'blockAlgorithm', offset: 0x14, type: 'u32' },
  { name: 'keyBits', offset: 0x18, type: 'u32' },
  { name: 'ivKeyAlgorithm', offset: 0x1c, type: 'u32' },
  { name: 'ivKeyBits', offset: 0x20, type: 'u32' },
  { name: 'uuid', offset: 0x24, type: 'bytes', size: 16 },
  { name: 'bytesPerBlock', offset: 0x34, type: 'u32' },
  { name: 'dataLen', offset: 0x38, type: 'u64' },
  { name: 'offsetToDataStart', offset: 0x40, type: 'u64' },
  { name: 'keyRecordCount', offset: 0x48, type: 'u32' },
] as const);

/** One entry of the table after the header, pointing at a key record inside the token. */
export const KEY_RECORD_POINTER = defineLayout('encrcdsa key record pointer', 20, 'be', [
  { name: 'type', offset: 0, type: 'u32' },
  { name: 'offset', offset: 4, type: 'u64' },
  { name: 'length', offset: 12, type: 'u64' },
] as const);

/** Type 1: the AES and HMAC keys wrapped with 3DES under a PBKDF2 key of the password. */
export const PASSPHRASE_RECORD = defineLayout('encrcdsa passphrase record', 0x268, 'be', [
  { name: 'kdfAlgorithm', offset: 0x00, type: 'u32' },
  { name: 'kdfPrngAlgorithm', offset: 0x04, type: 'u32' },
  { name: 'kdfIterationCount', offset: 0x08, type: 'u32' },
  { name: 'kdfSaltLen', offset: 0x0c, type: 'u32' },
  { name: 'kdfSalt', offset: 0x10, type: 'bytes', size: 32 },
  { name: 'blobEncIvLen', offset: 0x30, type: 'u32' },
  { name: 'blobEncIv', offset: 0x34, type: 'bytes', size: 32 },
  { name: 'blobEncKeyBits', offset: 0x54, type: 'u32' },
  { name: 'blobEncAlgorithm', offset: 0x58, type: 'u32' },
  { name: 'blobEncPadding', offset: 0x5c, type: 'u32' },
  { name: 'blobEncMode', offset: 0x60, type: 'u32' },
  { name: 'encryptedKeyblobLen', offset: 0x64, type: 'u32' },
  { name: 'encryptedKeyblob', offset: 0x68, type: 'bytes', size: 0x200 },
] as const);

/** Where hdiutil puts its one passphrase record. */
export const PASSPHRASE_RECORD_OFFSET = 0x60;
