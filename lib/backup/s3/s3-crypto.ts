// Client-side encryption of an S3 repository (`sbm backup ... --encryption`): the bucket never holds
// plaintext disk data, plaintext manifests or the names of the disks backed up.
//
//   password --scrypt(salt from sbm-repository.json)--> wrapping key
//   wrapping key --AES-256-GCM--> the repository's random 64-byte master key (stored sealed in
//                                 the configuration: a wrong password fails its tag, and a later
//                                 password change would re-seal only this)
//   master key --HKDF-SHA256--> data key (AES-256-GCM of chunks, manifests and the lease),
//                               id key (HMAC-SHA256 chunk ids: equal data still dedupes inside
//                               the repository, yet an id says nothing about content to anyone
//                               without the key), name key (HMAC of set names in manifest keys)
//
// A sealed object is a 12-byte random nonce, the ciphertext and the 16-byte tag. Its additional
// data is the object's key relative to the repository, so an object moved or copied to another
// name (a chunk under another id, a manifest under another backup) fails to open.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scrypt } from 'node:crypto';
import { SbmError } from '../../errors.js';

export const REPOSITORY_CIPHER = 'aes-256-gcm';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MASTER_KEY_BYTES = 64;
const SALT_BYTES = 32;
/** scrypt cost for a new repository: N = 2^15, r = 8 (32 MiB, ~0.1 s here), as restic's default. */
const DEFAULT_KDF = { name: 'scrypt', N: 32768, r: 8, p: 1 } as const;

export interface RepositoryEncryption {
  readonly cipher: typeof REPOSITORY_CIPHER;
  readonly kdf: { readonly name: 'scrypt'; readonly N: number; readonly r: number; readonly p: number; readonly salt: string };
  /** The master key sealed under the password's key (base64). */
  readonly masterKey: string;
}

export interface RepositoryKeys {
  readonly data: Buffer;
  readonly id: Buffer;
  readonly name: Buffer;
}

/** A new repository's encryption block and its keys. */
export async function newRepositoryEncryption(password: Uint8Array): Promise<{ encryption: RepositoryEncryption; keys: RepositoryKeys }> {
  const salt = randomBytes(SALT_BYTES);
  const kdf = { ...DEFAULT_KDF, salt: salt.toString('base64') };
  const master = randomBytes(MASTER_KEY_BYTES);
  const wrapping = await passwordKey(password, kdf);
  const encryption: RepositoryEncryption = {
    cipher: REPOSITORY_CIPHER,
    kdf,
    masterKey: seal(wrapping, master, 'sbm-master-key').toString('base64'),
  };
  return { encryption, keys: deriveKeys(master) };
}

/** The keys of an encrypted repository; SBM_BAD_PASSWORD when the password does not open them. */
export async function unlockRepository(encryption: RepositoryEncryption, password: Uint8Array, where: string): Promise<RepositoryKeys> {
  const wrapping = await passwordKey(password, encryption.kdf);
  const master = open(wrapping, Buffer.from(encryption.masterKey, 'base64'), 'sbm-master-key');
  if (master === undefined || master.length !== MASTER_KEY_BYTES) {
    throw new SbmError('SBM_BAD_PASSWORD', `the password does not unlock the encrypted repository ${where}; nothing was read or written`, {
      key: where,
    });
  }
  return deriveKeys(master);
}

/** Checks a parsed configuration's encryption block (hostile input: it bounds scrypt's cost too). */
export function checkRepositoryEncryption(value: unknown, where: string): RepositoryEncryption {
  const block = value as Partial<RepositoryEncryption> | null;
  const bad = (why: string) => new SbmError('SBM_CORRUPT', `${where}: encryption settings ${why}`, { key: where });
  if (block === null || typeof block !== 'object') throw bad('are not an object');
  if (block.cipher !== REPOSITORY_CIPHER)
    throw new SbmError('SBM_UNSUPPORTED', `${where}: cipher ${String(block.cipher)} is not supported`);
  const kdf = block.kdf;
  if (kdf === undefined || kdf === null || kdf.name !== 'scrypt') throw bad('name no scrypt parameters');
  const powerOfTwo = Number.isSafeInteger(kdf.N) && kdf.N >= 1024 && kdf.N <= 2 ** 20 && (kdf.N & (kdf.N - 1)) === 0;
  if (
    !powerOfTwo ||
    !(Number.isSafeInteger(kdf.r) && kdf.r >= 1 && kdf.r <= 32) ||
    !(Number.isSafeInteger(kdf.p) && kdf.p >= 1 && kdf.p <= 16)
  ) {
    throw bad('have scrypt costs out of range (N a power of two from 2^10 to 2^20, r 1-32, p 1-16)');
  }
  if (typeof kdf.salt !== 'string' || Buffer.from(kdf.salt, 'base64').length < 16) throw bad('have no salt of at least 16 bytes');
  if (typeof block.masterKey !== 'string' || Buffer.from(block.masterKey, 'base64').length !== NONCE_BYTES + MASTER_KEY_BYTES + TAG_BYTES) {
    throw bad('hold no sealed master key');
  }
  return block as RepositoryEncryption;
}

/** Nonce, ciphertext and tag of `plain`, bound to `label` (the object's name). */
export function seal(key: Buffer, plain: Uint8Array, label: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.subarray(0, 32), nonce);
  cipher.setAAD(Buffer.from(label));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** The plaintext of a sealed object, or undefined when it does not authenticate (damaged, moved, other key). */
export function open(key: Buffer, sealed: Uint8Array, label: string): Buffer | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.subarray(0, 32), sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(label));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Keyed hash (hex) of `data`: chunk ids and set-name tags of an encrypted repository. */
export function keyedHash(key: Buffer, data: Uint8Array | string): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

function deriveKeys(master: Buffer): RepositoryKeys {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
  return { data: derive('sbm-s3 data'), id: derive('sbm-s3 chunk id'), name: derive('sbm-s3 set name') };
}

function passwordKey(password: Uint8Array, kdf: RepositoryEncryption['kdf']): Promise<Buffer> {
  const salt = Buffer.from(kdf.salt, 'base64');
  // scrypt needs 128 * N * r bytes; Node refuses more than maxmem (32 MiB by default).
  const maxmem = 128 * kdf.N * kdf.r * kdf.p + 16 * 1024 * 1024;
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem }, (error, key) => (error === null ? resolve(key) : reject(error))),
  );
}
