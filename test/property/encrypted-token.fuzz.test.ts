// Hostile-input property of the encrypted-bundle token parser: random bytes after the magic,
// byte mutations of a real-layout token and truncations are either parsed (every bound held) or
// refused with SBM_CORRUPT; unlocking a parsed one gives keys or an SbmError; opening a bundle
// with such a token never fails any other way and never writes into the bundle.

import test from 'ava';
import fc from 'fast-check';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ENCRCDSA_TOKEN_BYTES, MAX_ITERATIONS } from '../../lib/bundle/encrypted-token-layout.js';
import { buildEncryptedToken, parseEncryptedToken, unlockToken } from '../../lib/bundle/encrypted-token.js';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SbmError, isSbmError } from '../../lib/errors.js';
import { tempDir } from '../helpers/tools.js';

const PASSWORD = Buffer.from('pw');
/** Unlocking is tried only for tokens that ask for this few iterations (a mutation may ask for millions). */
const CHEAP_ITERATIONS = 5000;

const base = (await buildEncryptedToken({ keyBits: 128, password: PASSWORD, iterations: 100 })).token;
/** Where the meaning is: header, record table and the passphrase record (the rest is zeros). */
const MEANINGFUL_BYTES = 0x2c8;

const mutations = fc.array(fc.record({ offset: fc.nat(MEANINGFUL_BYTES - 1), value: fc.nat(255) }), { minLength: 1, maxLength: 12 });
/** Whole-field overwrites with values hostile parsers meet: 0, 1, all ones, huge, just past a bound. */
const fieldWrites = fc.array(
  fc.record({
    offset: fc.nat((MEANINGFUL_BYTES - 4) / 4).map((word) => word * 4),
    value: fc.constantFrom(0, 1, 8, 20, 33, 0x200, 0x201, 0x268, 0x1de00, MAX_ITERATIONS + 1, 0x7fffffff, 0xffffffff),
  }),
  { minLength: 1, maxLength: 6 },
);

function mutate(writes: ReadonlyArray<{ offset: number; value: number }>, asWords: boolean): Buffer {
  const token = Buffer.from(base);
  for (const { offset, value } of writes) {
    if (asWords) token.writeUInt32BE(value >>> 0, offset);
    else token[offset] = value;
  }
  return token;
}

async function parsesOrRefuses(token: Buffer): Promise<void> {
  let parsed;
  try {
    parsed = parseEncryptedToken(token, 'fuzz');
  } catch (error) {
    if (!isSbmError(error, 'SBM_CORRUPT')) throw error;
    return;
  }
  if (![128, 256].includes(parsed.keyBits)) throw new Error(`key bits ${parsed.keyBits} passed the parser`);
  for (const record of parsed.passphraseRecords) {
    if (record.iterations < 1 || record.iterations > MAX_ITERATIONS) throw new Error(`${record.iterations} iterations passed`);
    if (record.blob.length % 8 !== 0 || record.blob.length === 0) throw new Error(`blob of ${record.blob.length} bytes passed`);
  }
  if (parsed.passphraseRecords.some((record) => record.iterations > CHEAP_ITERATIONS)) return;
  try {
    const keys = await unlockToken(parsed, PASSWORD, 'fuzz');
    if (keys.aesKey.length !== parsed.keyBits / 8 || keys.hmacKey.length !== 20) throw new Error('keys of the wrong size');
  } catch (error) {
    if (!(error instanceof SbmError)) throw error;
  }
}

test('byte mutations of the header and passphrase record are parsed within bounds or refused with SBM_CORRUPT', async (t) => {
  await fc.assert(
    fc.asyncProperty(mutations, (writes) => parsesOrRefuses(mutate(writes, false))),
    { numRuns: 300 },
  );
  t.pass();
});

test('hostile 32-bit field values (0, huge, just past a bound) are parsed within bounds or refused', async (t) => {
  await fc.assert(
    fc.asyncProperty(fieldWrites, (writes) => parsesOrRefuses(mutate(writes, true))),
    { numRuns: 300 },
  );
  t.pass();
});

test('truncated tokens and random bytes after the magic are refused with SBM_CORRUPT or parsed, never anything else', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.nat(ENCRCDSA_TOKEN_BYTES), (length) => parsesOrRefuses(base.subarray(0, length))),
    { numRuns: 200 },
  );
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 1024 }), (bytes) =>
      parsesOrRefuses(Buffer.concat([Buffer.from('encrcdsa'), Buffer.from(bytes)])),
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('opening a bundle with a mutated token works or fails with an SbmError, and leaves the folder as it was', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'fuzz.sparsebundle');
  const bundle = await SparseBundle.create(path, {
    sizeBytes: 4 * 1024 * 1024,
    bandSizeBytes: 1024 * 1024,
    encryption: { keyBits: 256, password: PASSWORD, iterations: 100 },
  });
  await bundle.write(0, Buffer.alloc(4096, 0x5a));
  await bundle.close();
  const before = (await readdir(path, { recursive: true })).sort();
  await fc.assert(
    fc.asyncProperty(fieldWrites, async (writes) => {
      const token = mutate(writes, true);
      if (token.readUInt32BE(0x68) > CHEAP_ITERATIONS) token.writeUInt32BE(100, 0x68); // keep each open fast
      await writeFile(join(path, 'token'), token);
      try {
        const opened = await SparseBundle.open(path, { readOnly: true, password: async () => PASSWORD });
        await opened.read(0, 8192);
        await opened.close();
      } catch (error) {
        if (!(error instanceof SbmError)) throw error;
      }
    }),
    { numRuns: 60 },
  );
  t.deepEqual((await readdir(path, { recursive: true })).sort(), before);
});
