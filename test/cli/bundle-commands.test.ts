// Runs the built `sbm` binary (dist/cli/sbm.js) the way users do.

import test from 'ava';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ERROR_CODES } from '../../lib/errors.js';
import { HDIUTIL_FIXTURE, REPO_ROOT, runSbm, seededBytes, tempDir } from '../helpers/tools.js';
import { BundleSession } from '../../lib/session/bundle-session.js';

const MIB = 1024 * 1024;

async function sparseRaw(path: string, sizeBytes: number) {
  const data = Buffer.alloc(sizeBytes);
  seededBytes(300_000, 1).copy(data, 0);
  seededBytes(5000, 2).copy(data, 9 * MIB - 2500); // inside band 1 of 8 MiB bands
  seededBytes(4096, 3).copy(data, sizeBytes - 4096);
  await writeFile(path, data);
  return data;
}

test('create, then info --json describes the bundle', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  const created = await runSbm(['create', bundle, '--size', '20G', '--json']);
  t.is(created.exitCode, 0, created.stderr);
  t.like(JSON.parse(created.stdout), { sizeBytes: 20 * 1024 ** 3, bandSizeBytes: 8 * MIB, bandCount: 2560 });
  const info = await runSbm(['info', bundle, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  t.like(JSON.parse(info.stdout), { format: 'sparsebundle', sizeBytes: 20 * 1024 ** 3, bandsPresent: 0, bandCount: 2560 });
  const again = await runSbm(['create', bundle, '--size', '1G']);
  t.is(again.exitCode, ERROR_CODES.SBM_EXISTS.exitCode);
  t.regex(again.stderr, /^sbm: SBM_EXISTS: /);
});

test('the built CLI is a bundle (no imports of tsc output) that reports the package version', async (t) => {
  const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const version = await runSbm(['--version']);
  t.is(version.exitCode, 0, version.stderr);
  t.is(version.stdout.trim(), manifest.version);
  // Start-up cost comes from loading many modules; the bundle imports only its own chunks.
  const relativeImports = async (file: string) => {
    const built = await readFile(join(REPO_ROOT, 'dist/cli', file), 'utf8');
    return [...built.matchAll(/(?:from|import\()\s*["'](\.[^"']*)["']/g)].map((match) => match[1] ?? '');
  };
  const relative = await relativeImports('sbm.js');
  t.true(relative.length > 0, 'commands load from chunks');
  for (const path of relative) t.regex(path, /^\.\/(chunks\/[\w-]+|standalone-commands)\.js$/);
  // token and changed-bands are bundled apart (cli/standalone-commands.ts), with chunks of their own.
  t.true(relative.includes('./standalone-commands.js'));
  const standalone = await relativeImports('standalone-commands.js');
  t.true(standalone.length > 0);
  for (const path of standalone) t.regex(path, /^\.\/standalone-chunks\/[\w-]+\.js$/);
});

test('bad arguments give one line with a stable code and exit 2', async (t) => {
  const dir = await tempDir(t);
  for (const args of [
    ['create', join(dir, 'a.sparsebundle'), '--size', 'huge'],
    ['create', join(dir, 'b.sparsebundle'), '--size', '1G', '--band-size', '1000'],
    ['create', join(dir, 'c.sparsebundle')],
    ['no-such-command'],
    // Caught by yargs rather than by sbm's own checks: the pointer to the help is on the same line.
    ['convert'],
    ['info', join(dir, 'x.vmdk'), '--no-such-option'],
    ['export', join(dir, 'a.sparsebundle'), join(dir, 'o.raw'), '--format', 'zzz'],
  ]) {
    const result = await runSbm(args);
    t.not(result.exitCode, 0, args.join(' '));
    t.regex(result.stderr, /^sbm: SBM_[A-Z_]+: [^\n]*\n$/, `one line: ${args.join(' ')}`);
    t.notRegex(result.stderr, /\n\s+at /, 'no stack trace without DEBUG');
  }
  // The debug logger loads only when DEBUG is set, and then shows where an error came from.
  const traced = await runSbm(['info', join(dir, 'missing.vmdk')], { env: { DEBUG: 'sbm:*' } });
  t.is(traced.exitCode, ERROR_CODES.SBM_NOT_FOUND.exitCode);
  t.regex(traced.stderr, /sbm:cli SbmError: SBM_NOT_FOUND: [^\n]*\n\s+at /);
  const usage = await runSbm(['create', join(dir, 'd.sparsebundle')]);
  t.is(usage.exitCode, 2);
  const band = await runSbm(['create', join(dir, 'e.sparsebundle'), '--size', '1G', '--band-size', '1000']);
  t.is(band.exitCode, ERROR_CODES.SBM_BAD_BAND_SIZE.exitCode);
});

test('convert a sparse raw image: default output beside the input, no overwrite without --force', async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.img');
  await sparseRaw(raw, 24 * MIB);
  const first = await runSbm(['convert', raw, '--json']);
  t.is(first.exitCode, 0, first.stderr);
  const summary = JSON.parse(first.stdout);
  t.is(summary.bundlePath, join(dir, 'disk.sparsebundle'));
  t.is(summary.format, 'raw');
  t.is(summary.bandsWritten, 3);
  t.deepEqual((await readdir(join(dir, 'disk.sparsebundle', 'bands'))).sort(), ['0', '1', '2']);
  const refused = await runSbm(['convert', raw]);
  t.is(refused.exitCode, ERROR_CODES.SBM_EXISTS.exitCode);
  const forced = await runSbm(['convert', raw, '--force', '--band-size', '1M', '--json']);
  t.is(forced.exitCode, 0, forced.stderr);
  t.is(JSON.parse(forced.stdout).bandSizeBytes, MIB);
  // no staging leftovers beside the output
  t.deepEqual((await readdir(dir)).sort(), ['disk.img', 'disk.sparsebundle']);
});

test('convert of a missing input fails cleanly and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const result = await runSbm(['convert', join(dir, 'nope.img'), join(dir, 'out.sparsebundle')]);
  t.is(result.exitCode, ERROR_CODES.SBM_NOT_FOUND.exitCode);
  t.regex(result.stderr, /^sbm: SBM_NOT_FOUND: .*nope\.img/);
  t.deepEqual(await readdir(dir), []);
});

test('export --format raw reproduces the converted bytes; export refuses to overwrite', async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.img');
  const data = await sparseRaw(raw, 24 * MIB);
  t.is((await runSbm(['convert', raw, join(dir, 'disk.sparsebundle')])).exitCode, 0);
  const out = join(dir, 'back.img');
  const exported = await runSbm(['export', join(dir, 'disk.sparsebundle'), out, '--format', 'raw', '--json']);
  t.is(exported.exitCode, 0, exported.stderr);
  t.true((await readFile(out)).equals(data));
  t.true((await stat(out)).blocks * 512 < 2 * MIB, 'holes stay holes');
  const again = await runSbm(['export', join(dir, 'disk.sparsebundle'), out, '--format', 'raw']);
  t.is(again.exitCode, ERROR_CODES.SBM_EXISTS.exitCode);
});

test('check passes a good bundle and the hdiutil fixture, and fails a damaged one with exit 5', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '16M', '--band-size', '1M'])).exitCode, 0);
  const good = await runSbm(['check', bundle]);
  t.is(good.exitCode, 0, good.stdout + good.stderr);
  t.regex(good.stdout, /ok/);
  const fixture = await runSbm(['check', HDIUTIL_FIXTURE, '--json']);
  t.is(fixture.exitCode, 0, fixture.stdout);
  t.true(JSON.parse(fixture.stdout).ok);

  await writeFile(join(bundle, 'bands', '3.tmp'), 'x');
  await writeFile(join(bundle, 'bands', '20'), 'x'); // band 0x20 is past a 16-band disk
  await writeFile(join(bundle, 'bands', '1'), Buffer.alloc(MIB + 1)); // longer than a band
  await writeFile(join(bundle, 'Info.bckup'), (await readFile(join(bundle, 'Info.plist'))).toString().replace('16777216', '16777728'));
  await mkdir(join(bundle, 'bands', 'sub'));
  const bad = await runSbm(['check', bundle, '--json']);
  t.is(bad.exitCode, ERROR_CODES.SBM_CHECK_FAILED.exitCode);
  const codes = JSON.parse(bad.stdout)
    .problems.map((p: { code: string }) => p.code)
    .sort();
  t.deepEqual(codes, ['SBM_BAND_OVERSIZE', 'SBM_BAND_PAST_END', 'SBM_PLIST_MISMATCH', 'SBM_STRAY_FILE', 'SBM_STRAY_FILE']);
  t.regex(bad.stderr, /^sbm: SBM_CHECK_FAILED: .*5 problem/);
});

test('info reads the hdiutil fixture', async (t) => {
  const info = await runSbm(['info', HDIUTIL_FIXTURE]);
  t.is(info.exitCode, 0, info.stderr);
  t.regex(info.stdout, /virtual size: +95\.4 MiB \(100020736 bytes\)/);
  t.regex(info.stdout, /bands present: +2/);
  t.regex(info.stdout, /mapped bitmaps: +true/);
});

test('resize grows freely and shrinks only with --shrink', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'vm.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '16M', '--band-size', '1M'])).exitCode, 0);
  const grown = await runSbm(['resize', bundle, '--size', '64M', '--json']);
  t.is(grown.exitCode, 0, grown.stderr);
  t.like(JSON.parse(grown.stdout), { previousBytes: 16 * MIB, sizeBytes: 64 * MIB });
  const refused = await runSbm(['resize', bundle, '--size', '8M']);
  t.is(refused.exitCode, 2);
  t.regex(refused.stderr, /^sbm: SBM_USAGE: .*--shrink/);
  t.is((await runSbm(['resize', bundle, '--size', '8M', '--shrink'])).exitCode, 0);
  t.like(JSON.parse((await runSbm(['info', bundle, '--json'])).stdout), { sizeBytes: 8 * MIB, bandCount: 8 });
});

test('an interrupted convert leaves no bundle and no staging folder behind', async (t) => {
  const dir = await tempDir(t);
  const raw = join(dir, 'big.img');
  await writeFile(raw, seededBytes(48 * MIB, 9));
  const { execa } = await import('execa');
  const { SBM_BIN } = await import('../helpers/tools.js');
  const child = execa('node', [SBM_BIN, 'convert', raw, join(dir, 'big.sparsebundle'), '--band-size', '1M'], { reject: false });
  // Wait until the staging folder exists (the handler is installed by then), then interrupt.
  let exited = false;
  void child.then(() => (exited = true));
  while (!exited && !(await readdir(dir)).some((name) => name.includes('sbm-partial'))) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  child.kill('SIGINT');
  const result = await child;
  // Interrupted while building: no output at all. Interrupted while the output was being put in
  // place (exit 130, "it is complete"), after that (killed by the signal itself) or not at all
  // (exit 0): the output is complete. Never a partial output, under any name.
  const completed = result.exitCode === 0 || result.signal === 'SIGINT' || /it is complete/.test(result.stderr);
  if (completed) {
    t.log(`the signal arrived after the build (exit ${result.exitCode}, signal ${result.signal}); the output must be complete`);
    t.deepEqual((await readdir(dir)).sort(), ['big.img', 'big.sparsebundle']);
    t.is((await runSbm(['check', join(dir, 'big.sparsebundle')])).exitCode, 0);
    return;
  }
  t.is(result.exitCode, 130);
  t.regex(result.stderr, /SBM_INTERRUPTED: SIGINT received; removed the partial/);
  t.deepEqual(await readdir(dir), ['big.img']);
});

test('info describes a bundle another process has open for writing, with a warning', async (t) => {
  const dir = await tempDir(t);
  const bundle = join(dir, 'busy.sparsebundle');
  t.is((await runSbm(['create', bundle, '--size', '16M', '--band-size', '1M'])).exitCode, 0);
  const { execa } = await import('execa');
  const { REPO_ROOT } = await import('../helpers/tools.js');
  const holder = execa('node', ['--import=tsx', join(REPO_ROOT, 'test/helpers/hold-bundle.ts'), bundle, 'rw'], {
    cwd: REPO_ROOT,
    stdin: 'pipe',
    reject: false,
  });
  t.teardown(async () => {
    holder.stdin?.end();
    await holder;
  });
  await new Promise<void>((resolve) => holder.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve()));
  const info = await runSbm(['info', bundle, '--json']);
  t.is(info.exitCode, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  t.is(parsed.sizeBytes, 16 * MIB);
  t.deepEqual(
    parsed.warnings.map((w: { code: string }) => w.code),
    ['SBM_IN_USE'],
  );
  t.is((await runSbm(['convert', bundle, join(dir, 'copy.sparsebundle')])).exitCode, 3, 'other commands still refuse a bundle in use');
});

test('a reader that closes the pipe early (| head) is not an error', async (t) => {
  const { execa } = await import('execa');
  const { SBM_BIN } = await import('../helpers/tools.js');
  const { SparseBundle } = await import('../../lib/engine/sparse-bundle.js');
  // Over 64 KiB of output (more than a pipe holds), so the writer must meet the closed pipe.
  const dir = await tempDir(t);
  const path = join(dir, 'many.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 3000 * MIB, bandSizeBytes: MIB });
  const token = await new BundleSession(bundle).token();
  for (let band = 0; band < 3000; band++) await bundle.write(band * MIB, Buffer.from([1]));
  await bundle.close();
  const result = await execa(
    'bash',
    ['-c', `node ${SBM_BIN} changed-bands ${path} --since ${token} | head -n 1 >/dev/null; echo "status=\${PIPESTATUS[0]}"`],
    {
      reject: false,
    },
  );
  t.regex(result.stdout, /status=0/);
  t.notRegex(result.stderr, /EPIPE|Error/);
});
