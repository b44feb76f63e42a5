// The encryption of S3 repositories without a server: sealing binds an object to its name, the
// password unlocks only its own repository's keys, and a configuration from the bucket (hostile
// input) cannot ask for unbounded scrypt work.

import test from 'ava';
import fc from 'fast-check';
import {
  checkRepositoryEncryption,
  keyedHash,
  newRepositoryEncryption,
  open,
  seal,
  unlockRepository,
} from '../../../lib/backup/s3/s3-crypto.js';
import { isSbmError } from '../../../lib/errors.js';

const password = Buffer.from('pässword');

test('the password unlocks the same keys; another password is SBM_BAD_PASSWORD', async (t) => {
  const { encryption, keys } = await newRepositoryEncryption(password);
  const stored = checkRepositoryEncryption(JSON.parse(JSON.stringify(encryption)), 'config');
  const unlocked = await unlockRepository(stored, Buffer.from(password), 'config');
  t.true(unlocked.data.equals(keys.data));
  t.true(unlocked.id.equals(keys.id));
  t.false(keys.data.equals(keys.id), 'each use has its own key');
  const error = await t.throwsAsync(unlockRepository(stored, Buffer.from('password'), 's3://b/config'));
  t.true(isSbmError(error, 'SBM_BAD_PASSWORD'));
  t.regex(error?.message ?? '', /does not unlock the encrypted repository s3:\/\/b\/config/);
  // A second repository made with the same password has other keys: chunk ids do not link them.
  const other = await newRepositoryEncryption(password);
  t.not(keyedHash(other.keys.id, 'same data'), keyedHash(keys.id, 'same data'));
});

test('a sealed object opens only under its key and its name; any changed byte fails', (t) => {
  const key = Buffer.alloc(32, 7);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (plain, flip) => {
      const sealed = seal(key, plain, 'chunks/ab/abcd');
      t.true(open(key, sealed, 'chunks/ab/abcd')?.equals(Buffer.from(plain)));
      t.is(open(key, sealed, 'chunks/ab/abce'), undefined, 'moved to another name');
      t.is(open(Buffer.alloc(32, 8), sealed, 'chunks/ab/abcd'), undefined, 'another key');
      const damaged = Buffer.from(sealed);
      const at = flip % damaged.length;
      damaged.writeUInt8(damaged.readUInt8(at) ^ 0x10, at);
      t.is(open(key, damaged, 'chunks/ab/abcd'), undefined, `byte ${at} changed`);
      t.is(open(key, sealed.subarray(0, 20), 'chunks/ab/abcd'), undefined, 'cut short');
    }),
    { numRuns: 100 },
  );
});

test('encryption settings from a bucket are checked before scrypt runs', async (t) => {
  const { encryption } = await newRepositoryEncryption(password);
  const variants: Array<[string, unknown, string]> = [
    ['huge N', { ...encryption, kdf: { ...encryption.kdf, N: 2 ** 30 } }, 'SBM_CORRUPT'],
    ['N not a power of two', { ...encryption, kdf: { ...encryption.kdf, N: 30000 } }, 'SBM_CORRUPT'],
    ['huge r', { ...encryption, kdf: { ...encryption.kdf, r: 1000 } }, 'SBM_CORRUPT'],
    ['short salt', { ...encryption, kdf: { ...encryption.kdf, salt: 'AAAA' } }, 'SBM_CORRUPT'],
    ['another kdf', { ...encryption, kdf: { ...encryption.kdf, name: 'pbkdf2' } }, 'SBM_CORRUPT'],
    ['cut master key', { ...encryption, masterKey: encryption.masterKey.slice(0, 40) }, 'SBM_CORRUPT'],
    ['another cipher', { ...encryption, cipher: 'chacha20' }, 'SBM_UNSUPPORTED'],
    ['not an object', 'aes', 'SBM_CORRUPT'],
  ];
  for (const [label, value, code] of variants) {
    const error = t.throws(() => checkRepositoryEncryption(value, 'config'), undefined, label);
    t.true(isSbmError(error, code as 'SBM_CORRUPT'), `${label}: ${error?.message}`);
  }
});
