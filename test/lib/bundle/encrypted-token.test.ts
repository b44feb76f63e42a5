// The encrcdsa token against hdiutil's own tokens: the known answers of the reference (§8.1) for
// keys and chunk IVs, a byte-for-byte rebuild of a real token, wrong passwords, corrupt key data,
// and tokens whose first key record is not a passphrase record.

import test from 'ava';
import { ChunkCipher } from '../../../lib/bundle/chunk-cipher.js';
import { ENCRCDSA_TOKEN_BYTES } from '../../../lib/bundle/encrypted-token-layout.js';
import { buildEncryptedToken, parseEncryptedToken, unlockToken, wrapKeys } from '../../../lib/bundle/encrypted-token.js';
import { fixtureToken } from '../../helpers/encrypted-fixtures.js';

const hex = (text: string) => Buffer.from(text, 'hex');
const password = (text: string) => Buffer.from(text, 'utf8');

test('Test1Enc (hdiutil, AES-128, password foo): the reference keys and chunk IVs', async (t) => {
  const token = parseEncryptedToken(fixtureToken('Test1Enc'), 'Test1Enc/token');
  t.is(token.keyBits, 128);
  t.is(token.chunkBytes, 512);
  t.is(token.passphraseRecords[0]?.iterations, 192307);
  const keys = await unlockToken(token, password('foo'), 'Test1Enc');
  t.deepEqual(keys.aesKey, hex('fee3c6f1fd19242fbb0c6b2c391e50af'));
  t.deepEqual(keys.hmacKey, hex('fee3c6f1fd19242fbb0c6b2c391e50af40f98600'));
  const cipher = new ChunkCipher(keys, token.chunkBytes);
  t.deepEqual(cipher.ivOf(0), hex('a3b0fb04431d4ecae5f6d77a2f1b501e'));
  t.deepEqual(cipher.ivOf(1), hex('23d3660bf6f4ba22a5be690f396c2c33'));
  t.deepEqual(cipher.ivOf(2047), hex('a6a0910a3912cd05ff5f4809319b728a'));
});

test('none-fat-aes128 and -aes256 (hdiutil, password 1234): the reference keys; the HMAC key is stored, not derived', async (t) => {
  const aes128 = await unlockToken(parseEncryptedToken(fixtureToken('none-fat-aes128'), 't128'), password('1234'), 't128');
  t.deepEqual(aes128.aesKey, hex('cd96002080e5f796d0f935d315ea8cb3'));
  t.deepEqual(aes128.hmacKey, hex('cd96002080e5f796d0f935d315ea8cb300000000'));
  const token256 = parseEncryptedToken(fixtureToken('none-fat-aes256'), 't256');
  t.is(token256.keyBits, 256);
  t.is(token256.passphraseRecords[0]?.iterations, 263157);
  const aes256 = await unlockToken(token256, password('1234'), 't256');
  t.deepEqual(aes256.aesKey, hex('2ee1d97a7ed39b87dd565901c1d0073f0b757e1ea662316abf417bf185fe2f0d'));
  t.deepEqual(aes256.hmacKey, hex('2ee1d97a7ed39b87dd565901c1d0073f0b757e1e'));
});

test("sbm's token writer rebuilds hdiutil's Test1Enc token byte for byte from its keys and random inputs", async (t) => {
  const real = fixtureToken('Test1Enc');
  const keys = {
    keyBits: 128 as const,
    aesKey: hex('fee3c6f1fd19242fbb0c6b2c391e50af'),
    hmacKey: hex('fee3c6f1fd19242fbb0c6b2c391e50af40f98600'),
  };
  const rebuilt = await wrapKeys(keys, password('foo'), 192307, {
    salt: hex('5cf49f341b33ae5c3d858a27e2f358e54d91802e'),
    blobIv: hex('8c647593b7e982cb'),
    uuid: real.subarray(0x24, 0x34),
  });
  t.is(rebuilt.length, ENCRCDSA_TOKEN_BYTES);
  t.true(rebuilt.equals(real));
});

test('a wrong password, and a right one with damaged key data, are SBM_BAD_PASSWORD', async (t) => {
  const token = parseEncryptedToken(fixtureToken('Test1Enc'), 'x');
  await t.throwsAsync(unlockToken(token, password('fooo'), 'B'), { message: /^SBM_BAD_PASSWORD: B: wrong password/ });
  await t.throwsAsync(unlockToken(token, password('foo\n'), 'B'), { code: 'SBM_BAD_PASSWORD' } as never);
  // A new token whose wrapped blob has its last byte flipped: the padding or CKIE check fails.
  const { token: made } = await buildEncryptedToken({ keyBits: 256, password: password('pw'), iterations: 1000 });
  const damaged = Buffer.from(made);
  damaged[0xc8 + 63] = (damaged[0xc8 + 63] as number) ^ 0x01;
  await t.throwsAsync(unlockToken(parseEncryptedToken(damaged, 'd'), password('pw'), 'd'), { message: /^SBM_BAD_PASSWORD/ });
  t.is((await unlockToken(parseEncryptedToken(made, 'm'), password('pw'), 'm')).aesKey.length, 32);
});

test('a token whose first key record is a certificate record unlocks with the second; certificate-only is SBM_UNSUPPORTED', async (t) => {
  const { token: made, keys } = await buildEncryptedToken({ keyBits: 128, password: password('pw'), iterations: 1000 });
  // Two records: type 2 (a certificate record, opaque here) at 0x400, then the passphrase record at 0x800.
  const two = Buffer.alloc(made.length);
  made.copy(two, 0, 0, 0x48);
  two.writeUInt32BE(2, 0x48);
  two.writeUInt32BE(2, 0x4c);
  two.writeBigUInt64BE(0x400n, 0x50);
  two.writeBigUInt64BE(0x100n, 0x58);
  two.writeUInt32BE(1, 0x60);
  two.writeBigUInt64BE(0x800n, 0x64);
  two.writeBigUInt64BE(0x268n, 0x6c);
  two.fill(0xaa, 0x400, 0x500);
  made.copy(two, 0x800, 0x60, 0x60 + 0x268);
  const parsed = parseEncryptedToken(two, 'two');
  t.deepEqual(parsed.otherRecordTypes, [2]);
  t.is(parsed.passphraseRecords.length, 1);
  t.deepEqual((await unlockToken(parsed, password('pw'), 'two')).aesKey, keys.aesKey);
  const certificateOnly = Buffer.from(made);
  certificateOnly.writeUInt32BE(2, 0x4c);
  await t.throwsAsync(unlockToken(parseEncryptedToken(certificateOnly, 'c'), password('pw'), 'c'), {
    message: /^SBM_UNSUPPORTED: c: the bundle is unlocked by a certificate or keybag/,
  });
});

test('header values sbm does not know are SBM_CORRUPT naming the field', (t) => {
  const cases: Array<[number, number, RegExp]> = [
    [0x08, 1, /version 1/],
    [0x18, 192, /key bits 192/],
    [0x34, 100, /chunk size of 100 bytes/],
    [0x48, 0, /0 key records/],
    [0x48, 100000, /100000 key records/],
    [0x68, 0, /0 PBKDF2 iterations/],
    [0x68, 0xffffffff, /4294967295 PBKDF2 iterations/],
    [0x6c, 33, /salt of 33 bytes/],
    [0xc4, 7, /wrapped key of 7 bytes/],
    [0xb8, 18, /key-wrap algorithm 18/],
  ];
  for (const [offset, value, message] of cases) {
    const token = fixtureToken('Test1Enc');
    token.writeUInt32BE(value, offset);
    const error = t.throws(() => parseEncryptedToken(token, 'T'), { message: /^SBM_CORRUPT: T: / });
    t.regex(error?.message ?? '', message);
  }
  t.throws(() => parseEncryptedToken(fixtureToken('Test1Enc').subarray(0, 0x40), 'T'), { message: /^SBM_CORRUPT.*truncated/ });
  t.throws(() => parseEncryptedToken(fixtureToken('Test1Enc').subarray(0, 0x100), 'T'), { message: /^SBM_CORRUPT.*outside the token/ });
});

test('decryptChunks (ECB + chaining) undoes encryptChunks (CBC per chunk), with chunk numbers from any start', (t) => {
  const keys = { keyBits: 256 as const, aesKey: Buffer.alloc(32, 7), hmacKey: Buffer.alloc(20, 9) };
  const cipher = new ChunkCipher(keys, 512);
  const plain = Buffer.alloc(512 * 5);
  for (let index = 0; index < plain.length; index++) plain[index] = (index * 31) & 0xff;
  const encrypted = cipher.encryptChunks(plain, 70000); // past the IV cache
  const back = Buffer.alloc(plain.length);
  cipher.decryptChunks(encrypted, 70000, back);
  t.true(back.equals(plain));
  // A chunk decrypted with the wrong number differs only in its first 16 bytes (CBC): compare whole chunks.
  const wrong = Buffer.alloc(512);
  cipher.decryptChunks(encrypted.subarray(0, 512), 1, wrong);
  t.false(wrong.subarray(0, 16).equals(plain.subarray(0, 16)));
  t.true(wrong.subarray(16).equals(plain.subarray(16, 512)));
});
