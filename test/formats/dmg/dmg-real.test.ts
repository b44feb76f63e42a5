// Real UDIF images written by macOS hdiutil (citruz/dmgwiz's test suite, test/fixtures/dmgwiz/):
// one small GPT + APFS disk stored six ways (raw UDRO, zlib, bzip2, ADC, LZMA, LZFSE). Each readable
// one goes through `sbm convert` then `sbm export --format raw` and must equal dmg2img's output of
// the same disk. dmg2img reads the raw, ADC and bzip2 images; it misreads this zlib image (its
// chunks are stored out of disk order: dmg2img's output is 15 KiB short with a zeroed GPT table)
// and cannot decode LZMA, so those two are held against dmg2img's reading of the raw image.

import test from 'ava';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 as zlibCrc32, gunzipSync } from 'node:zlib';
import { openImage } from '../../../formats/index.js';
import { REPO_ROOT, requireTool, runSbm, tempDir } from '../../helpers/tools.js';
import { buildDmg, sampleDisk } from './dmg-kit.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'dmgwiz');
/** sha256 of the 10 510 336-byte disk all six images hold (dmg2img's reading of input_ro.dmg). */
const DISK_SHA256 = '1407509ff44696aab011815d84951ad2c53cb7345a71d9803b73817c2d2d83cf';

async function unpack(dir: string, name: string): Promise<string> {
  const path = join(dir, `${name}.dmg`);
  await writeFile(path, gunzipSync(await readFile(join(FIXTURES, `${name}.dmg.gz`))));
  return path;
}

async function viaBundle(dir: string, image: string): Promise<Buffer> {
  const bundle = join(dir, 'disk.sparsebundle');
  const converted = await runSbm(['convert', image, bundle, '--no-progress']);
  if (converted.exitCode !== 0) throw new Error(`convert failed: ${converted.stderr}`);
  // Nothing but sbm's own lines belongs on stderr (a bundled decoder once drew Node's DEP0005 warning).
  if (converted.stderr !== '') throw new Error(`convert wrote to stderr: ${converted.stderr}`);
  const raw = join(dir, 'disk.raw');
  const exported = await runSbm(['export', bundle, raw, '--format', 'raw']);
  if (exported.exitCode !== 0) throw new Error(`export failed: ${exported.stderr}`);
  return readFile(raw);
}

async function dmg2img(image: string, out: string): Promise<Buffer> {
  await execa('dmg2img', ['-s', '-i', image, '-o', out]);
  return readFile(out);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

for (const [name, chunkType, reference] of [
  ['input_ro', 'raw', 'input_ro'],
  ['input_adc', 'adc', 'input_adc'],
  ['input_bzip2', 'bzip2', 'input_bzip2'],
  ['input_zlib', 'zlib', 'input_ro'],
  ['input_lzma', 'lzma', 'input_ro'],
] as const) {
  test(`hdiutil's ${name}.dmg (${chunkType} chunks) converts to the disk dmg2img reads from ${reference}.dmg`, async (t) => {
    await requireTool(t, 'dmg2img');
    const dir = await tempDir(t);
    const image = await unpack(dir, name);
    const info = await runSbm(['info', image, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    const details = JSON.parse(info.stdout) as { format: string; sizeBytes: number; chunkTypes: Record<string, number> };
    t.is(details.format, 'dmg');
    t.true((details.chunkTypes[chunkType] ?? 0) > 0, `holds ${chunkType} chunks`);
    const ours = await viaBundle(dir, image);
    const theirs = await dmg2img(reference === name ? image : await unpack(dir, reference), join(dir, 'dmg2img.img'));
    t.is(ours.length, details.sizeBytes);
    t.is(sha256(theirs), DISK_SHA256);
    t.true(ours.equals(theirs));
  });
}

test("hdiutil's LZFSE image is refused in one line, nothing written", async (t) => {
  const dir = await tempDir(t);
  const image = await unpack(dir, 'input_lzfse');
  const converted = await runSbm(['convert', image, join(dir, 'out.sparsebundle')]);
  t.is(converted.exitCode, 4);
  t.regex(converted.stderr, /SBM_UNSUPPORTED.*lzfse/);
  t.is(converted.stderr.trim().split('\n').length, 1);
  const listing = await execa('ls', ['-A', dir]);
  t.is(listing.stdout.trim(), 'input_lzfse.dmg');
});

test('LZMA chunks built with xz read back exactly; a damaged xz chunk is SBM_CORRUPT naming the file', async (t) => {
  const dir = await tempDir(t);
  const disk = sampleDisk(600, 7);
  const image = buildDmg(disk, [
    {
      name: 'p',
      chunks: [
        { sectors: 300, kind: 'lzma' },
        { sectors: 300, kind: 'lzma' },
      ],
    },
  ]);
  const path = join(dir, 'lzma.dmg');
  await writeFile(path, image);
  const out = join(dir, 'out.raw');
  const exported = await runSbm(['export', path, out, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  t.true((await readFile(out)).equals(disk));
  // Flip a byte inside the first chunk's compressed data (past the 12-byte xz header).
  const damaged = Buffer.from(image);
  damaged[40] = (damaged[40] as number) ^ 0xff;
  await writeFile(path, damaged);
  const refused = await runSbm(['export', path, join(dir, 'bad.raw'), '--format', 'raw']);
  t.not(refused.exitCode, 0);
  t.regex(refused.stderr, /SBM_CORRUPT: .*lzma\.dmg/);
  t.is(refused.stderr.trim().split('\n').length, 1);
});

test("hdiutil's checksums: info --verify checks the data fork and every blkx of the real images", async (t) => {
  const dir = await tempDir(t);
  for (const [name, dataFork] of [
    ['input_adc', 'crc32 ok'],
    ['input_lzma', 'crc32 ok'],
    ['input_zlib', 'none'],
  ] as const) {
    const info = await runSbm(['info', await unpack(dir, name), '--verify', '--json']);
    t.is(info.exitCode, 0, info.stderr);
    const { verified, checksums } = JSON.parse(info.stdout) as { verified: Record<string, unknown>; checksums: Record<string, string> };
    t.deepEqual(verified, { dataFork, blkxChecked: 8, blkxWithoutCrc32: 0 }, name);
    t.is(checksums.blkx, 'crc32');
  }
});

test('a damaged byte in a real raw chunk fails export with the blkx named; info --verify names the data fork', async (t) => {
  const dir = await tempDir(t);
  const image = await unpack(dir, 'input_ro');
  const bytes = await readFile(image);
  // File offsets 17408..435200 hold the APFS partition's raw chunk (its mish table says so).
  bytes[100_000] = (bytes[100_000] as number) ^ 0x01;
  await writeFile(image, bytes);
  const info = await runSbm(['info', image]);
  t.is(info.exitCode, 0, 'the tables are intact: open and info still work');
  const exported = await runSbm(['export', image, join(dir, 'out.raw'), '--format', 'raw']);
  t.not(exported.exitCode, 0);
  t.regex(exported.stderr, /SBM_CORRUPT: .*input_ro\.dmg: UDIF checksum of blkx "disk image \(Apple_APFS : 4\)" does not match/);
  t.is(exported.stderr.trim().split('\n').length, 1);
  const verified = await runSbm(['info', image, '--verify']);
  t.not(verified.exitCode, 0);
  t.regex(verified.stderr, /SBM_CORRUPT: .*input_ro\.dmg: UDIF data fork checksum does not match/);
});

test('a damaged master checksum is refused at open', async (t) => {
  const dir = await tempDir(t);
  const image = await unpack(dir, 'input_bzip2');
  const bytes = await readFile(image);
  const at = bytes.length - 512 + 360;
  bytes[at] = (bytes[at] as number) ^ 0x80;
  await writeFile(image, bytes);
  const info = await runSbm(['info', image]);
  t.not(info.exitCode, 0);
  t.regex(info.stderr, /SBM_CORRUPT: .*input_bzip2\.dmg: UDIF master checksum/);
});

test("dfvfs's hdiutil image (GPT, HFS+, zlib and zero-fill chunks) matches hdiutil's own blkx checksums", async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'hfsplus_zlib.dmg');
  await writeFile(image, gunzipSync(await readFile(join(REPO_ROOT, 'test', 'fixtures', 'dfvfs', 'hfsplus_zlib.dmg.gz'))));
  const info = await runSbm(['info', image, '--verify', '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const details = JSON.parse(info.stdout) as { verified: Record<string, unknown>; chunkTypes: Record<string, number> };
  t.true((details.chunkTypes.zero ?? 0) > 0, 'holds zero-fill chunks, which the checksums count as zeros');
  t.deepEqual(details.verified, { dataFork: 'none', blkxChecked: 7, blkxWithoutCrc32: 0 });
  const disk = await viaBundle(dir, image);
  t.is(sha256(disk), 'c86d3616818e175caca2f6022f49e190e5b1cfe39b2e8f9373119e22aa7eaf58');
  // The primary GPT header (sector 1) carries a CRC-32 of itself: one more check written by macOS.
  const header = Buffer.from(disk.subarray(512, 512 + 92));
  const stored = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  t.is(header.toString('latin1', 0, 8), 'EFI PART');
  t.is(zlibCrc32(header) >>> 0, stored);
});

test('once a blkx checksum has failed, every later read of that partition fails too (no data on a retry)', async (t) => {
  const dir = await tempDir(t);
  const path = await unpack(dir, 'input_ro');
  const bytes = await readFile(path);
  bytes[100_000] = (bytes[100_000] as number) ^ 0x01;
  await writeFile(path, bytes);
  const image = await openImage(path);
  t.teardown(() => image.close());
  const apfs = { offset: 40 * 512, length: 816 * 512 };
  t.true((await image.read(0, 512)).readUInt16LE(510) === 0xaa55, 'other partitions read (the MBR)');
  for (let round = 0; round < 2; round++)
    await t.throwsAsync(image.read(apfs.offset, apfs.length), { code: 'SBM_CORRUPT', message: /Apple_APFS : 4/ } as never);
  await t.throwsAsync(image.read(apfs.offset, 512), { code: 'SBM_CORRUPT' } as never);
});
