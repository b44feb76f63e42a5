// The `token` file at open: empty = an ordinary bundle; `encrcdsa` = an encrypted one, unlocked with
// a password asked for only then (so an ordinary bundle never prompts). Order, so that a missing
// password costs nothing and a huge token is never read whole:
//   size 0 -> plain | first 8 bytes not "encrcdsa" -> SBM_ENCRYPTED | no password -> SBM_ENCRYPTED
//   | longer than 1 MiB -> SBM_CORRUPT | parse (SBM_CORRUPT) | unwrap (SBM_BAD_PASSWORD) -> cipher

import { constants } from 'node:fs';
import { stat } from 'node:fs/promises';
import { readFully } from '../fs/read-fully.js';
import { SbmError } from '../errors.js';
import { isNotRegularFile, openRegular, readSmallFile } from '../fs/safe-open.js';
import type { WarningSink } from '../warnings.js';
import { type BundlePaths, bundlePaths } from './bundle-paths.js';
import type { ChunkCipher } from './chunk-cipher.js';
import { ENCRCDSA_SIGNATURE, ENCRCDSA_TOKEN_MAX_BYTES } from './encrypted-token-layout.js';
import type { AesKeyBits } from './encrypted-token.js';

// The ciphers (and node:crypto, slow to load) are imported only for an encrypted bundle: every
// open reads the token, and `sbm changed-bands` on an ordinary bundle should not pay for them.
const loadTokenCrypto = () => import('./encrypted-token.js');

/**
 * Asked for the password of an encrypted bundle, once it is known to be one; undefined = none
 * available (the open fails with SBM_ENCRYPTED). The bytes are used as given (UTF-8, nothing
 * stripped), as hdiutil does.
 */
export type PasswordSource = () => Promise<Uint8Array | undefined>;

/** How a new bundle is encrypted (SparseBundle.create). */
export interface NewBundleEncryption {
  readonly keyBits: AesKeyBits;
  readonly password: Uint8Array;
  /** PBKDF2 iterations (default 250 000, as hdiutil calibrates on current Macs). */
  readonly iterations?: number;
}

/** The bundle's cipher, or undefined for an ordinary bundle (empty token; a missing one warns). */
export async function openBundleEncryption(
  paths: BundlePaths,
  password: PasswordSource | undefined,
  onWarning: WarningSink,
): Promise<ChunkCipher | undefined> {
  let opened;
  try {
    opened = await openRegular(paths.token, constants.O_RDONLY);
  } catch (error) {
    if (isNotRegularFile(error)) {
      throw new SbmError(
        'SBM_CORRUPT',
        `${paths.token} is a ${error.kind}, not a regular file; sbm cannot tell whether the bundle is encrypted`,
        {
          path: paths.token,
          kind: error.kind,
        },
      );
    }
    onWarning({ code: 'SBM_NO_TOKEN', message: `${paths.root} has no token file; macOS will not recognise it` });
    return undefined;
  }
  let token: Buffer;
  try {
    const sizeBytes = opened.stats.size;
    if (sizeBytes === 0) return undefined;
    const head = Buffer.alloc(Math.min(sizeBytes, ENCRCDSA_SIGNATURE.length));
    await readFully(opened.handle, head, 0);
    if (head.toString('latin1') !== ENCRCDSA_SIGNATURE) {
      throw new SbmError('SBM_ENCRYPTED', `${paths.root} is an encrypted bundle (non-empty token) of a kind sbm does not know`, {
        path: paths.root,
      });
    }
    if (sizeBytes > ENCRCDSA_TOKEN_MAX_BYTES)
      throw new SbmError('SBM_CORRUPT', `${paths.token} is ${sizeBytes} bytes; an encrypted-bundle token is ${0x1de00}`, {
        path: paths.token,
      });
    token = Buffer.alloc(sizeBytes);
    await readFully(opened.handle, token, 0);
  } finally {
    await opened.handle.close();
  }
  const given = password === undefined ? undefined : await password();
  if (given === undefined) {
    throw new SbmError(
      'SBM_ENCRYPTED',
      `${paths.root} is an encrypted bundle (encrcdsa); give its password with --stdinpass or at the terminal prompt`,
      { path: paths.root },
    );
  }
  const [{ parseEncryptedToken, unlockToken }, { ChunkCipher }] = await Promise.all([loadTokenCrypto(), import('./chunk-cipher.js')]);
  const parsed = parseEncryptedToken(token, paths.token);
  const keys = await unlockToken(parsed, given, paths.root);
  return new ChunkCipher(keys, parsed.chunkBytes);
}

/** A new token (hdiutil's layout) with fresh random keys wrapped under the password. */
export async function newBundleToken(encryption: NewBundleEncryption): Promise<Buffer> {
  const { DEFAULT_NEW_TOKEN_ITERATIONS, buildEncryptedToken } = await loadTokenCrypto();
  const { token } = await buildEncryptedToken({
    keyBits: encryption.keyBits,
    password: encryption.password,
    iterations: encryption.iterations ?? DEFAULT_NEW_TOKEN_ITERATIONS,
  });
  return token;
}

/**
 * The token's bytes, for a snapshot or backup that must stay a complete bundle (its bands are
 * ciphertext only this token unlocks). Empty when the bundle has none.
 */
export async function readTokenBytes(paths: BundlePaths): Promise<Buffer> {
  const read = await readSmallFile(paths.token, ENCRCDSA_TOKEN_MAX_BYTES).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (read === undefined) return Buffer.alloc(0);
  if (read.tooLong)
    throw new SbmError('SBM_CORRUPT', `${paths.token} is ${read.sizeBytes} bytes, too long for a token`, { path: paths.token });
  return read.bytes;
}

/** True when the bundle at `bundlePath` has a non-empty token (it is encrypted). */
export async function isEncryptedBundle(bundlePath: string): Promise<boolean> {
  const info = await stat(bundlePaths(bundlePath).token).catch(() => undefined);
  return info !== undefined && info.size > 0;
}
