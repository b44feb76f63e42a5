// Encrypted sparse bundles through the engine: real hdiutil bands read right (known answers and
// their unencrypted twins), reads that cross bands and start or end inside chunks, missing and
// short bands, a wrong password that writes nothing, and writes of every shape checked against
// an in-memory model and against the independent Python reader (test/helpers/encrcdsa.py).

import test from 'ava';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { CHUNK, buildFixture, encrcdsa } from '../../helpers/encrypted-fixtures.js';
import { seededBytes, tempDir } from '../../helpers/tools.js';

const MiB = 1024 * 1024;
const pw = (text: string) => async () => Buffer.from(text);

async function listing(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return Promise.all(
    entries.map(async (entry) => {
      const path = join(entry.parentPath, entry.name);
      return `${path.slice(dir.length)} ${entry.isFile() ? (await stat(path)).size : 'dir'}`;
    }),
  ).then((list) => list.sort());
}

test('Test1Enc (hdiutil): HFS+ header, a read across bands 0/1, band 2 equal to its unencrypted twin, band 3 missing', async (t) => {
  const dir = await tempDir(t);
  const fixture = await buildFixture(dir, 'Test1Enc');
  const bundle = await SparseBundle.open(fixture.path, { readOnly: true, password: pw(fixture.password) });
  t.teardown(() => bundle.close());
  t.is(bundle.encryption, 'AES-128');
  t.deepEqual(await bundle.read(1024, 16), Buffer.from('482b0004800021004846534a00000002', 'hex'));
  t.is((await bundle.read(1048568, 16)).toString('latin1'), 'is dis parturien');
  t.is((await bundle.read(MiB, 16)).toString('latin1'), 'arturient montes');
  // Only band 2 of the two samples is identical content (reference §1.2: every chunk of it decrypts to the twin).
  for (const run of fixture.runs.filter((each) => each.band === 2)) {
    const at = run.band * MiB + run.firstChunk * CHUNK;
    t.true((await bundle.read(at, run.twin.length)).equals(run.twin), `band ${run.band} chunk ${run.firstChunk}`);
  }
  // Reads that start and end inside chunks, one across a chunk edge.
  const whole = await bundle.read(2 * MiB, 8 * CHUNK);
  t.true((await bundle.read(2 * MiB + 100, 1000)).equals(whole.subarray(100, 1100)));
  t.true((await bundle.read(2 * MiB + 511, 2)).equals(whole.subarray(511, 513)));
  t.true((await bundle.read(3 * MiB, 4096)).equals(Buffer.alloc(4096)), 'missing band 3 reads as zeros');
  t.true((await bundle.read(MiB + 2 * CHUNK, 4096)).equals(Buffer.alloc(4096)), 'past the end of short band 1: zeros');
});

for (const name of ['none-fat-aes128', 'none-fat-aes256'] as const) {
  test(`${name} (hdiutil): FAT boot sector, chunks equal to the unencrypted twin, encrypted zeros read as zeros`, async (t) => {
    const dir = await tempDir(t);
    const fixture = await buildFixture(dir, name);
    const bundle = await SparseBundle.open(fixture.path, { readOnly: true, password: pw(fixture.password) });
    t.teardown(() => bundle.close());
    const boot = await bundle.read(0, 512);
    t.is(boot.subarray(3, 11).toString('latin1'), 'BSD  4.4');
    t.deepEqual(boot.subarray(510, 512), Buffer.from([0x55, 0xaa]));
    let equal = 0;
    for (const run of fixture.runs) {
      const plain = await bundle.read(run.firstChunk * CHUNK, run.twin.length);
      for (let at = 0; at < plain.length; at += CHUNK)
        if (plain.subarray(at, at + CHUNK).equals(run.twin.subarray(at, at + CHUNK))) equal++;
    }
    // Chunk 0 (the boot sector: serial number) and 383, 415 differ between the twins, as in the originals.
    t.is(equal, 13 - 3);
    t.true((await bundle.read(4095 * CHUNK, CHUNK)).equals(Buffer.alloc(CHUNK)), 'a zero chunk hdiutil stored encrypted');
  });
}

test('a wrong password is SBM_BAD_PASSWORD and writes nothing, even read-write; no password is SBM_ENCRYPTED', async (t) => {
  const dir = await tempDir(t);
  const fixture = await buildFixture(dir, 'Test1Enc');
  const before = await listing(dir);
  await t.throwsAsync(SparseBundle.open(fixture.path, { password: pw('bar') }), { message: /^SBM_BAD_PASSWORD: .*wrong password/ });
  await t.throwsAsync(SparseBundle.open(fixture.path, { password: async () => undefined }), { message: /^SBM_ENCRYPTED: .*encrcdsa/ });
  await t.throwsAsync(SparseBundle.open(fixture.path), { message: /^SBM_ENCRYPTED/ });
  t.deepEqual(await listing(dir), before);
});

test('writes of every shape match an in-memory model, band files stay whole chunks, and the Python reader agrees', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'model.sparsebundle');
  const size = 6 * MiB;
  const model = Buffer.alloc(size);
  const bundle = await SparseBundle.create(path, {
    sizeBytes: size,
    bandSizeBytes: MiB,
    encryption: { keyBits: 256, password: Buffer.from('s3cret'), iterations: 1000 },
  });
  const write = async (offset: number, data: Buffer) => {
    await bundle.write(offset, data);
    data.copy(model, offset);
  };
  await write(10, seededBytes(5, 1)); // inside one chunk
  await write(MiB - 700, seededBytes(1500, 2)); // across a band edge, unaligned both ends
  await write(3 * MiB + 300 * 1024, seededBytes(4096, 3)); // far past the end of a new band: gap of encrypted zeros
  await write(2 * MiB, seededBytes(MiB, 4)); // a whole band
  await write(2 * MiB + 4096, Buffer.alloc(8192)); // zeros inside data
  await bundle.trim(2 * MiB + 100, 1000); // partial trim inside a band
  model.fill(0, 2 * MiB + 100, 2 * MiB + 1100);
  await bundle.trim(2 * MiB + MiB / 2 + 7, MiB / 2 - 7); // trim to the end of a band: truncates
  model.fill(0, 2 * MiB + MiB / 2 + 7, 3 * MiB);
  await write(5 * MiB + 1000, Buffer.alloc(100)); // zeros into a missing band: nothing created
  t.true((await bundle.read(0, size)).equals(model));
  await bundle.close();
  t.deepEqual((await readdir(join(path, 'bands'))).sort(), ['0', '1', '2', '3'], 'no band for zeros');
  for (const name of await readdir(join(path, 'bands'))) t.is((await stat(join(path, 'bands', name))).size % CHUNK, 0, name);
  // The first data of band 3 is at 300 KiB: the 300 KiB before it are encrypted zeros, never a hole of zero bytes.
  const band3 = await readFile(join(path, 'bands', '3'));
  t.false(band3.subarray(0, CHUNK).equals(Buffer.alloc(CHUNK)));
  const reopened = await SparseBundle.open(path, { readOnly: true, password: pw('s3cret') });
  t.true((await reopened.read(0, size)).equals(model));
  await reopened.close();
  const python = await encrcdsa(['decrypt', path, join(dir, 'out.raw')], 's3cret');
  t.is(python.exitCode, 0, python.stderr);
  t.true((await readFile(join(dir, 'out.raw'))).equals(model), 'the independent reader sees the same disk');
  t.is((await encrcdsa(['decrypt', path, join(dir, 'bad.raw')], 's3cret\n')).exitCode, 3, 'python refuses a wrong password too');
});

test('Python-made bundles (AES-128, AES-256) read as their raw image; a band of partial chunks is SBM_CORRUPT', async (t) => {
  const dir = await tempDir(t);
  const raw = Buffer.alloc(5 * MiB);
  seededBytes(MiB + 333, 7).copy(raw, 700 * 1024);
  seededBytes(4096, 8).copy(raw, 4 * MiB + 512);
  await writeFile(join(dir, 'disk.raw'), raw);
  for (const bits of [128, 256]) {
    const path = join(dir, `py${bits}.sparsebundle`);
    const made = await encrcdsa(['make', join(dir, 'disk.raw'), path, String(bits), String(MiB), '2000'], 'pässwörd');
    t.is(made.exitCode, 0, made.stderr);
    const bundle = await SparseBundle.open(path, { readOnly: true, password: pw('pässwörd') });
    t.is(bundle.encryption, `AES-${bits}`);
    t.true((await bundle.read(0, raw.length)).equals(raw), `AES-${bits}`);
    await bundle.close();
  }
  await writeFile(join(dir, 'py128.sparsebundle', 'bands', '4'), Buffer.alloc(1000, 1));
  const damaged = await SparseBundle.open(join(dir, 'py128.sparsebundle'), { readOnly: true, password: pw('pässwörd') });
  t.teardown(() => damaged.close());
  t.true((await damaged.read(4 * MiB, 512)).length === 512, 'the whole chunk before the partial one reads');
  await t.throwsAsync(damaged.read(4 * MiB + 900, 200), { message: /^SBM_CORRUPT: band 4 is 1000 bytes, not a whole number of 512-byte/ });
});
