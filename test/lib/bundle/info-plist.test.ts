import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import * as plist from 'plist';
import {
  parseCanonicalInfoPlist,
  parseInfoPlist,
  parseInfoPlistAsync,
  renderInfoPlist,
  validateGeometry,
} from '../../../lib/bundle/info-plist.js';
import { HDIUTIL_FIXTURE, tempDir } from '../../helpers/tools.js';

const digits = (value: number) => String(value).length;

test('renders the exact bytes hdiutil wrote for the fixture bundle', async (t) => {
  const golden = await readFile(join(HDIUTIL_FIXTURE, 'Info.plist'));
  const rendered = renderInfoPlist({ bandSizeBytes: 8388608, sizeBytes: 100020736, version: 1 });
  t.true(rendered.equals(golden));
  t.true((await readFile(join(HDIUTIL_FIXTURE, 'Info.bckup'))).equals(rendered));
});

for (const [bandSizeBytes, sizeBytes] of [
  [8388608, 40980480],
  [1048576, 512],
  [67108864, 2 ** 40],
  [8589934592, 2 ** 52],
] as const) {
  test(`template for band-size ${bandSizeBytes}, size ${sizeBytes}: length formula, line rule, strict parse`, (t) => {
    const bytes = renderInfoPlist({ bandSizeBytes, sizeBytes, version: 1 });
    const text = bytes.toString('utf8');
    t.is(bytes.length, 480 + digits(bandSizeBytes) + digits(sizeBytes));
    t.true(bytes.length < 1024);
    t.true(text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"'));
    t.true(text.endsWith('</plist>\n'));
    t.false(text.includes('\r'));
    // sparsebundlefs rule: a <key> line names the key, the value sits between > and < on the next line.
    const lines = text.split('\n');
    const lineValue = (key: string) => {
      const index = lines.findIndex((line) => line.includes(`<key>${key}</key>`));
      return Number(/>([^<]*)</.exec(lines[index + 1] ?? '')?.[1]);
    };
    t.is(lineValue('band-size'), bandSizeBytes);
    t.is(lineValue('size'), sizeBytes);
    t.deepEqual(plist.parse(text), {
      CFBundleInfoDictionaryVersion: '6.0',
      'band-size': bandSizeBytes,
      'bundle-backingstore-version': 1,
      'diskimage-bundle-type': 'com.apple.diskimage.sparsebundle',
      size: sizeBytes,
    });
    t.deepEqual(parseInfoPlist(bytes), { bandSizeBytes, sizeBytes, version: 1 });
  });
}

test('version 2 keeps its uuid through render and parse', (t) => {
  const info = { bandSizeBytes: 67108864, sizeBytes: 2 ** 36, version: 2, uuid: '0f5e0c52-2a4c-4b0e-9d2c-1d1f3e0b9a77' };
  t.deepEqual(parseInfoPlist(renderInfoPlist(info)), info);
});

test('parses a binary plist written by python plistlib, ignoring unknown keys', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'Info.plist');
  await execa('python3', [
    '-c',
    'import plistlib,sys; plistlib.dump({"band-size": 8388608, "size": 1073741824, "bundle-backingstore-version": 1, ' +
      '"diskimage-bundle-type": "com.apple.diskimage.sparsebundle", "CFBundleInfoDictionaryVersion": "6.0", "extra": True}, ' +
      'open(sys.argv[1], "wb"), fmt=plistlib.FMT_BINARY)',
    out,
  ]);
  const bytes = await readFile(out);
  t.is(bytes.subarray(0, 8).toString(), 'bplist00');
  t.deepEqual(await parseInfoPlistAsync(bytes), { bandSizeBytes: 8388608, sizeBytes: 1073741824, version: 1 });
  await writeFile(out, ''); // keep tempDir cleanup simple
});

test('refuses plists macOS would refuse', async (t) => {
  const good = renderInfoPlist({ bandSizeBytes: 8388608, sizeBytes: 1 << 30, version: 1 }).toString();
  const long = good.replace('<dict>', `<dict>\n\t<key>padding</key>\n\t<string>${'x'.repeat(600)}</string>`);
  t.throws(() => parseInfoPlist(Buffer.from(long)), { message: /SBM_BAD_PLIST: .*only the first 1024/ });
  await t.throwsAsync(parseInfoPlistAsync(Buffer.from('not a plist')), { message: /^SBM_BAD_PLIST/ });
  await t.throwsAsync(parseInfoPlistAsync(Buffer.from(good.replace('<integer>1073741824</integer>', '<string>big</string>'))), {
    message: /no valid integer "size"/,
  });
  await t.throwsAsync(parseInfoPlistAsync(Buffer.from(good.replace('com.apple.diskimage.sparsebundle', 'com.example.other'))), {
    message: /diskimage-bundle-type/,
  });
});

test('the canonical fast path takes exactly the template bytes and agrees with the general parser', async (t) => {
  const v1 = renderInfoPlist({ bandSizeBytes: 8388608, sizeBytes: 2 ** 40, version: 1 });
  const v2 = renderInfoPlist({ bandSizeBytes: 67108864, sizeBytes: 2 ** 36, version: 2, uuid: '0F5E0C52-2A4C-4B0E-9D2C-1D1F3E0B9A77' });
  const golden = await readFile(join(HDIUTIL_FIXTURE, 'Info.plist'));
  for (const bytes of [v1, v2, golden]) {
    const fast = parseCanonicalInfoPlist(bytes);
    t.not(fast, undefined);
    t.deepEqual(fast, await parseInfoPlistAsync(Buffer.from(bytes.toString('utf8').replace(/\t/g, '    '))));
    t.deepEqual(parseInfoPlist(bytes), fast); // synchronous without the general parser
  }
  const text = v1.toString('utf8');
  // Same values in other spellings: not the template, so the general parser decides.
  const variants = [
    text.replace(/\n/g, '\r\n'),
    text.replace('<integer>8388608</integer>', '<integer>08388608</integer>'),
    text.replace('\t<key>size</key>', '\t<key>extra</key>\n\t<true/>\n\t<key>size</key>'),
    text.replace('</dict>', '\t<key>uuid</key>\n\t<string>a&amp;b</string>\n</dict>'),
    `${text}\n`,
    text.replace('<integer>1099511627776</integer>', '<integer>99999999999999999</integer>'),
  ];
  for (const variant of variants) t.is(parseCanonicalInfoPlist(Buffer.from(variant)), undefined, variant);
  const parsed = await parseInfoPlistAsync(Buffer.from(variants[3] as string));
  t.is(parsed.uuid, 'a&b');
  t.deepEqual(await parseInfoPlistAsync(Buffer.from(variants[0] as string)), { bandSizeBytes: 8388608, sizeBytes: 2 ** 40, version: 1 });
});

test('validateGeometry enforces Apple band limits and sbm size limits', (t) => {
  t.notThrows(() => validateGeometry(1048576, 512));
  t.notThrows(() => validateGeometry(8589934592, 2 ** 52));
  for (const bad of [0, 1048576 - 4096, 1048576 + 512, 8589934592 + 4096]) {
    t.throws(() => validateGeometry(bad, 1 << 30), { message: /^SBM_BAD_BAND_SIZE/ });
  }
  for (const bad of [0, 1000, 2 ** 52 + 512, -512]) {
    t.throws(() => validateGeometry(8388608, bad), { message: /^SBM_BAD_SIZE/ });
  }
});
