// Damage to the tracker's own files after `sbm token` and changes to bands 1, 5 and 7: every
// answer must list all three (over-reporting is fine) or refuse the token with exit 10 (full
// backup). Never fewer bands, never SBM_INTERNAL, never a hang. CLI tests: `npm run build` first.

import test from 'ava';
import { execa } from 'execa';
import { join } from 'node:path';
import { appendFile, copyFile, lstat, mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { isSbmError } from '../../../lib/errors.js';
import { WarningList } from '../../../lib/warnings.js';
import { encodeChangeRecord } from '../../../lib/tracking/change-log.js';
import { epochTagOf } from '../../../lib/tracking/tracking-state.js';
import { SBM_BIN, requireTool, tempDir } from '../../helpers/tools.js';
import { BundleSession } from '../../../lib/session/bundle-session.js';

const MiB = 1024 * 1024;
const CHANGED = [1, 5, 7];

interface Setup {
  readonly path: string;
  readonly token: string;
  /** Tracker files as they were right after the token. */
  readonly atToken: { log: string; cache: string; state: string };
}

async function setup(t: Parameters<typeof tempDir>[0]): Promise<Setup> {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  let bundle = await SparseBundle.create(path, { sizeBytes: 10 * MiB, bandSizeBytes: MiB });
  for (let band = 0; band < 10; band++) await bundle.write(band * MiB, Buffer.alloc(4096, band + 1));
  const token = await new BundleSession(bundle).token();
  await bundle.close();
  const atToken = { log: join(dir, 'log-at-token'), cache: join(dir, 'cache-at-token'), state: join(dir, 'state-at-token') };
  await copyFile(join(path, '.sbm', 'changes.log'), atToken.log);
  await copyFile(join(path, '.sbm', 'stat-cache'), atToken.cache);
  await copyFile(join(path, '.sbm', 'state'), atToken.state);
  bundle = await SparseBundle.open(path);
  await bundle.write(1 * MiB + 100, Buffer.from('one'));
  await bundle.write(5 * MiB + 100, Buffer.from('five'));
  await bundle.write(7 * MiB + 100, Buffer.from('seven'));
  await bundle.close();
  return { path, token, atToken };
}

type Damage = (setup: Setup, file: string) => Promise<void>;

const DAMAGE: Record<string, Damage> = {
  delete: (_, file) => rm(file),
  'truncate to 0': (_, file) => truncate(file, 0),
  zeros: async (_, file) => writeFile(file, Buffer.alloc((await readFile(file)).length)),
  'random bytes': async (_, file) => writeFile(file, randomBytes((await readFile(file)).length)),
  'drop last record': async (_, file) => truncate(file, (await readFile(file)).length - 32),
  'cut last record mid-way': async (_, file) => truncate(file, (await readFile(file)).length - 16),
  directory: async (_, file) => {
    await rm(file);
    await mkdir(file);
    await writeFile(join(file, 'x'), 'x');
  },
  FIFO: async (_, file) => {
    await rm(file);
    await execa('mkfifo', [file]);
  },
  'huge sparse file': (_, file) => truncate(file, 64 * 1024 * MiB),
};

/** The answer is a superset of bands 1, 5, 7 (exit 0) or a refusal with exit 10. */
async function assertNoUnderReport(t: Parameters<typeof tempDir>[0], { path, token }: Setup, what: string): Promise<'listed' | 'refused'> {
  const run = await execa('node', [SBM_BIN, 'changed-bands', path, '--since', token, '--relative'], { reject: false, timeout: 30_000 });
  t.false(run.timedOut === true, `${what}: hung`);
  if (run.exitCode === 10) {
    t.regex(run.stderr, /SBM_TOKEN_(STALE|FOREIGN)/, what);
    return 'refused';
  }
  t.is(run.exitCode, 0, `${what}: ${run.stderr}`);
  const listed = new Set(run.stdout.split('\n').filter((line) => line.length > 0));
  for (const band of CHANGED) t.true(listed.has(`bands/${band}`), `${what}: band ${band} missing from ${JSON.stringify([...listed])}`);
  return 'listed';
}

test('changes.log damaged every way: changed-bands lists 1, 5, 7 or refuses with exit 10 (CLI)', async (t) => {
  t.timeout(120_000);
  await requireTool(t, 'mkfifo');
  const damages: Record<string, Damage> = { ...DAMAGE, 'rolled back to the token': (setup, file) => copyFile(setup.atToken.log, file) };
  for (const [name, damage] of Object.entries(damages)) {
    const state = await setup(t);
    await damage(state, join(state.path, '.sbm', 'changes.log'));
    const outcome = await assertNoUnderReport(t, state, `log ${name}`);
    // Every one of these loses records sbm had made durable: the tracker must know it.
    t.is(outcome, 'refused', `log ${name}: answered instead of refusing`);
    // The new epoch works: a fresh token, a change, and it is reported.
    const bundle = await SparseBundle.open(state.path);
    const fresh = await new BundleSession(bundle).token();
    await bundle.write(3 * MiB, Buffer.from('three'));
    t.deepEqual(
      (await new BundleSession(bundle).changedBands(fresh)).bands.map((band) => band.bandIndex),
      [3],
      `log ${name}: new epoch`,
    );
    await bundle.close();
  }
});

test('stat cache damaged every way (and with the log rolled back too): never fewer bands', async (t) => {
  t.timeout(120_000);
  await requireTool(t, 'mkfifo');
  const damages: Record<string, Damage> = {
    ...DAMAGE,
    'rolled back to the token': (setup, file) => copyFile(setup.atToken.cache, file),
    'rolled back with the log': async (setup, file) => {
      await copyFile(setup.atToken.cache, file);
      await copyFile(setup.atToken.log, join(setup.path, '.sbm', 'changes.log'));
    },
    'header only (every slot lost)': (_, file) => truncate(file, 64),
  };
  for (const [name, damage] of Object.entries(damages)) {
    const state = await setup(t);
    await damage(state, join(state.path, '.sbm', 'stat-cache'));
    // Read-only opens must not hang or fail either, and must not under-report.
    const reader = await SparseBundle.open(state.path, { readOnly: true });
    try {
      const bands = (await new BundleSession(reader).changedBands(state.token)).bands.map((band) => band.bandIndex);
      for (const band of CHANGED) t.true(bands.includes(band), `read-only, cache ${name}: band ${band} missing`);
    } catch (error) {
      t.true(isSbmError(error) && error.exitCode === 10, `read-only, cache ${name}: ${String(error)}`);
    } finally {
      await reader.close();
    }
    await assertNoUnderReport(t, state, `cache ${name}`);
  }
});

test('a log longer than the mark (records appended after the last state write) is still answered', async (t) => {
  const state = await setup(t);
  const sbm = join(state.path, '.sbm');
  const saved = JSON.parse(await readFile(join(sbm, 'state'), 'utf8')) as {
    epochId: string;
    generation: number;
    logMark: { bytes: number };
  };
  t.is(saved.logMark.bytes, (await readFile(join(sbm, 'changes.log'))).length, 'a clean close names the whole log');
  // What a session killed after its change record leaves: a record past the mark.
  await appendFile(join(sbm, 'changes.log'), encodeChangeRecord(epochTagOf(saved.epochId), saved.generation, 2));
  const warnings = new WarningList();
  const reopened = await SparseBundle.open(state.path, { onWarning: warnings.sink });
  t.teardown(() => reopened.close());
  t.false(warnings.items.some((warning) => warning.code === 'SBM_TRACKING_RESET'));
  t.deepEqual(
    (await new BundleSession(reopened).changedBands(state.token)).bands.map((band) => band.bandIndex),
    [1, 2, 5, 7],
  );
});

test('a state file rolled back to the token (log and cache newer) refuses: its generations would be handed out again', async (t) => {
  const state = await setup(t);
  await copyFile(state.atToken.state, join(state.path, '.sbm', 'state'));
  t.is(await assertNoUnderReport(t, state, 'state rolled back'), 'refused');
  // The new epoch answers its own tokens.
  const bundle = await SparseBundle.open(state.path);
  const fresh = await new BundleSession(bundle).token();
  await bundle.write(2 * MiB, Buffer.from('two'));
  t.deepEqual(
    (await new BundleSession(bundle).changedBands(fresh)).bands.map((band) => band.bandIndex),
    [2],
  );
  await bundle.close();
});

test('.sbm/reserve that is a symlink or a folder: opens work, nothing outside the bundle is written', async (t) => {
  const state = await setup(t);
  const outside = join(state.path, '..', 'outside.txt');
  await writeFile(outside, 'keep me');
  const reserve = join(state.path, '.sbm', 'reserve');
  for (const make of [() => symlink(outside, reserve), () => mkdir(reserve)]) {
    await rm(reserve, { recursive: true, force: true });
    await make();
    const bundle = await SparseBundle.open(state.path);
    await bundle.write(2 * MiB, Buffer.from('two'));
    await bundle.close();
    t.is(await readFile(outside, 'utf8'), 'keep me');
    t.true((await lstat(reserve)).isFile(), 'a real reserve file replaced it');
  }
});
