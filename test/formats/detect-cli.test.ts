// Every image format sbm cannot read yet is refused by content, never converted as raw bytes:
// `sbm convert` and `sbm info` exit 4 with exactly `SBM_UNSUPPORTED: <file>: <format> images are
// not supported` and write nothing, while `--format raw` still takes the file as raw bytes.
// Images come from qemu-img where it can write the format (see detect-kit.ts).
// Needs `npm run build` first (runs dist/cli/sbm.js).

import test, { type ExecutionContext } from 'ava';
import { execa } from 'execa';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runSbm, tempDir } from '../helpers/tools.js';
import { type FormatSample, KiB, SAMPLES } from './detect-kit.js';

function refusal(path: string, label: string): string {
  return `sbm: SBM_UNSUPPORTED: ${path}: ${label} images are not supported\n`;
}

/** The folder's entries, recursively, so a stray output anywhere is seen. */
async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

async function assertRefused(t: ExecutionContext, dir: string, path: string, label: string): Promise<void> {
  const before = await listing(dir);
  // Default output (NAME.sparsebundle beside the input) and an explicit one: neither may appear.
  for (const args of [
    ['convert', path, '--no-progress'],
    ['convert', path, join(dir, 'out.sparsebundle'), '--no-progress'],
    ['info', path],
    ['info', path, '--json'],
  ]) {
    const result = await runSbm(args);
    t.is(result.exitCode, 4, `${args.join(' ')}: ${result.stderr}`);
    t.is(result.stderr, refusal(path, label), args.join(' '));
    // With --json the refusal is also an object on stdout; without, stdout stays empty.
    const code = /^sbm: (SBM_[A-Z_]+):/.exec(result.stderr)?.[1];
    if (args.includes('--json')) t.deepEqual(Object.keys(JSON.parse(result.stdout)), ['error'], args.join(' '));
    if (args.includes('--json')) t.is(JSON.parse(result.stdout).error.code, code, args.join(' '));
    else t.is(result.stdout, '', args.join(' '));
  }
  t.deepEqual(await listing(dir), before, 'nothing written');
}

/** `--format raw` converts the container's bytes; exported back they equal the file (plus zero padding to 512). */
async function assertRawOverride(t: ExecutionContext, dir: string, path: string): Promise<void> {
  const bundle = join(dir, 'as-raw.sparsebundle');
  const convert = await runSbm(['convert', path, bundle, '--format', 'raw', '--no-progress', '--json']);
  t.is(convert.exitCode, 0, convert.stderr);
  t.is(JSON.parse(convert.stdout).format, 'raw');
  const info = await runSbm(['info', path, '--format', 'raw', '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const original = await readFile(path);
  t.is(JSON.parse(info.stdout).sizeBytes, original.length);
  const back = join(dir, 'back.raw');
  const exported = await runSbm(['export', bundle, back, '--format', 'raw']);
  t.is(exported.exitCode, 0, exported.stderr);
  const bytes = await readFile(back);
  t.is(bytes.length, Math.ceil(original.length / 512) * 512);
  t.true(bytes.subarray(0, original.length).equals(original), 'the bundle holds the file bytes');
  t.true(
    bytes.subarray(original.length).every((byte) => byte === 0),
    'padding is zeros',
  );
}

async function qemuProbe(path: string): Promise<string> {
  const result = await execa('qemu-img', ['info', '--output=json', path]);
  return (JSON.parse(result.stdout) as { format: string }).format;
}

/** Samples whose format now has a reader: they convert (checked against qemu-img in test/formats/<format>/). */
const READABLE: ReadonlyMap<string, string> = new Map([
  ['v3.qcow2', 'qcow2'],
  ['v2.qcow2', 'qcow2'],
  ['disk.vhdx', 'vhdx'],
  ['dynamic.vhd', 'vhd'],
  ['fixed.vhd', 'vhd'],
  ['virtualpc.vhd', 'vhd'],
  ['disk.vdi', 'vdi'],
  ['new.hds', 'parallels'],
  ['old.hdd', 'parallels'],
  ['installer.dmg', 'dmg'],
  ['ustar.ova', 'ova'],
  ['gnu.ova', 'ova'],
  ['pax.ova', 'ova'],
]);

for (const sample of SAMPLES.filter((candidate) => READABLE.has(candidate.file))) {
  test(`${sample.file}: ${sample.label} is read, not refused: convert and info name the format`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const path = join(dir, sample.file);
    await sample.make(path, dir);
    const info = await runSbm(['info', path, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    t.is(JSON.parse(info.stdout).format, READABLE.get(sample.file));
    const convert = await runSbm(['convert', path, join(dir, 'out.sparsebundle'), '--no-progress', '--json']);
    t.is(convert.exitCode, 0, convert.stderr);
    t.is(JSON.parse(convert.stdout).format, READABLE.get(sample.file));
  });
}

for (const sample of SAMPLES.filter((candidate) => !READABLE.has(candidate.file))) {
  test(`${sample.file}: convert and info refuse ${sample.label} with exit 4 and write nothing; --format raw takes the bytes`, async (t) => {
    await requireTool(t, 'qemu-img');
    const dir = await tempDir(t);
    const path = join(dir, sample.file);
    await sample.make(path, dir);
    if (sample.qemuFormat !== undefined) t.is(await qemuProbe(path), sample.qemuFormat, 'qemu-img probes the sample as this format');
    await assertRefused(t, dir, path, sample.label);
    await assertRawOverride(t, dir, path);
  });
}

test('--format names a known format without a reader: refused the same way', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'plain.img');
  await writeFile(path, Buffer.alloc(64 * KiB, 1));
  const result = await runSbm(['info', path, '--format', 'qed']);
  t.is(result.exitCode, 4);
  t.is(result.stderr, refusal(path, 'QED'));
  const unknown = await runSbm(['info', path, '--format', 'nonsense']);
  t.is(unknown.exitCode, 2);
  t.regex(unknown.stderr, /^sbm: SBM_USAGE: unknown format "nonsense"/);
});

test('export and mount refuse an unsupported image too; mount --format raw serves its bytes', async (t) => {
  await requireTool(t, 'qemu-img');
  const dir = await tempDir(t);
  const sample = SAMPLES.find((candidate) => candidate.file === 'old.qcow') as FormatSample;
  const path = join(dir, sample.file);
  await sample.make(path, dir);
  const exported = await runSbm(['export', path, join(dir, 'out.raw'), '--format', 'raw']);
  t.is(exported.exitCode, 4);
  t.is(exported.stderr, refusal(path, sample.label));
  const mount = await runSbm(['mount', path, '--socket', join(dir, 'nbd.sock')]);
  t.is(mount.exitCode, 4);
  t.is(mount.stderr, refusal(path, sample.label));
  t.deepEqual(await readdir(dir), [sample.file]);

  const serving = execa(
    'node',
    [join('dist', 'cli', 'sbm.js'), 'mount', path, '--format', 'raw', '--socket', join(dir, 'raw.sock'), '--json'],
    {
      reject: false,
      cwd: join(import.meta.dirname, '..', '..'),
    },
  );
  try {
    // The report is pretty-printed JSON and may arrive in several chunks: wait until it parses.
    const report = await new Promise<{ sizeBytes: number; readOnly: boolean }>((resolve, reject) => {
      let text = '';
      serving.stdout?.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        try {
          resolve(JSON.parse(text));
        } catch {
          // incomplete so far: keep reading
        }
      });
      serving.on('exit', () => reject(new Error(`mount exited early: ${text}`)));
    });
    t.is(report.sizeBytes, (await readFile(path)).length);
    t.true(report.readOnly);
  } finally {
    if (serving.pid !== undefined) process.kill(serving.pid, 'SIGTERM');
    await serving;
  }
});

test('folders: OVF and Parallels folders are read by their own readers; a sparse bundle is read', async (t) => {
  const dir = await tempDir(t);
  const hdd = join(dir, 'harddisk.hdd');
  await mkdir(hdd);
  // Detected as a Parallels disk folder, so its (empty) descriptor is read and found wanting.
  await writeFile(join(hdd, 'DiskDescriptor.xml'), '<?xml version="1.0"?>\n<Parallels_disk_image Version="1.0"/>\n');
  const parallels = await runSbm(['info', hdd]);
  t.is(parallels.exitCode, 4);
  t.is(parallels.stderr, `sbm: SBM_CORRUPT: ${join(hdd, 'DiskDescriptor.xml')}: <Disk_Parameters> is missing\n`);
  const ovf = join(dir, 'appliance');
  await mkdir(ovf);
  await writeFile(join(ovf, 'appliance.ovf'), '<Envelope/>\n');
  // Detected as an OVF package, so its descriptor is read and found wanting: never raw, never a crash.
  for (const command of [
    ['info', ovf],
    ['mount', ovf, '--socket', join(dir, 'nbd.sock')],
  ]) {
    const run = await runSbm(command);
    t.is(run.exitCode, 4);
    t.is(run.stderr, `sbm: SBM_CORRUPT: ${ovf}: the Envelope's namespace "" is not OVF 1.x or 2.x\n`);
  }
  const bundle = join(dir, 'vm.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '8M'])).exitCode, 0);
  const info = await runSbm(['info', bundle, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  t.is(JSON.parse(info.stdout).format, 'sparsebundle');
  const raw = await runSbm(['info', bundle, '--format', 'raw']);
  t.is(raw.exitCode, 2);
  t.regex(raw.stderr, /^sbm: SBM_USAGE: --format raw reads a file; .* is a folder\n$/);
});

test('an encrypted sparse bundle is refused by convert, info and mount with SBM_ENCRYPTED, and nothing is written', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'secret.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '8M'])).exitCode, 0);
  const token = Buffer.alloc(0x1de00);
  token.write('encrcdsa', 0, 'latin1');
  token.writeUInt32BE(2, 8);
  await writeFile(join(bundle, 'token'), token);
  const before = await listing(dir);
  for (const args of [
    ['convert', bundle, join(dir, 'copy.sparsebundle'), '--no-progress'],
    ['info', bundle],
    ['mount', bundle, '--socket', join(dir, 'nbd.sock')],
  ]) {
    const result = await runSbm(args);
    t.is(result.exitCode, 4, args.join(' '));
    t.regex(result.stderr, /^sbm: SBM_ENCRYPTED: .*secret\.sparsebundle is an encrypted bundle \(encrcdsa\)/, args.join(' '));
    t.is(result.stderr.split('\n').length, 2, 'one line');
  }
  t.deepEqual(await listing(dir), before);
});

test('a tar whose first member is not an .ovf, and files too short for any signature, stay raw', async (t) => {
  const dir = await tempDir(t);
  const staging = join(dir, 'staging');
  await mkdir(staging);
  await writeFile(join(staging, 'disk1.vmdk'), Buffer.alloc(4 * KiB, 3));
  await writeFile(join(staging, 'appliance.ovf'), '<Envelope/>\n');
  const tar = join(dir, 'not-an.ova');
  await execa('tar', ['--format=ustar', '-cf', tar, '-C', staging, 'disk1.vmdk', 'appliance.ovf']);
  const short = join(dir, 'short.img');
  await writeFile(short, Buffer.from('QFI', 'latin1'));
  for (const path of [tar, short]) {
    const info = await runSbm(['info', path, '--json']);
    t.is(info.exitCode, 0, info.stderr);
    t.is(JSON.parse(info.stdout).format, 'raw');
  }
});
