// CLI tests: run `npx tsc -p .` first (they run dist/cli/sbm.js).
import test from 'ava';
import { join } from 'node:path';
import { cp, open } from 'node:fs/promises';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { runSbm, tempDir } from '../../helpers/tools.js';

const MiB = 1024 * 1024;

async function setup(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; path: string }> {
  const dir = await tempDir(t);
  const path = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(path, { sizeBytes: 8 * MiB, bandSizeBytes: MiB });
  await bundle.write(0, Buffer.alloc(3 * MiB, 1));
  await bundle.close();
  return { dir, path };
}

async function edit(path: string, work: (bundle: SparseBundle) => Promise<void>): Promise<void> {
  const bundle = await SparseBundle.open(path);
  try {
    await work(bundle);
  } finally {
    await bundle.close();
  }
}

function nextToken(stderr: string): string {
  const match = /sbm: next token: (\S+)/.exec(stderr);
  if (match === null) throw new Error(`no next token in: ${stderr}`);
  return match[1] as string;
}

test('token -> changed-bands loop: paths, --relative, -0, --ranges, --json with deleted flags', async (t) => {
  const { path } = await setup(t);
  const tokenRun = await runSbm(['token', path]);
  t.is(tokenRun.exitCode, 0, tokenRun.stderr);
  const token = tokenRun.stdout.trim();
  t.regex(token, /^sbm1:/);
  await edit(path, async (bundle) => {
    await bundle.write(5 * MiB + 3, Buffer.from('hello'));
    await bundle.trim(MiB, MiB);
  });
  const plain = await runSbm(['changed-bands', path, '--since', token]);
  t.is(plain.exitCode, 0, plain.stderr);
  t.is(plain.stdout, `${join(path, 'bands', '1')}\n${join(path, 'bands', '5')}\n`);
  const next = nextToken(plain.stderr);
  const relative = await runSbm(['changed-bands', path, '--since', token, '--relative', '-0']);
  t.is(relative.stdout, 'bands/1\0bands/5\0');
  const ranges = await runSbm(['changed-bands', path, '--since', token, '--ranges']);
  t.is(ranges.stdout, `${MiB} ${MiB}\n${5 * MiB} ${MiB}\n`);
  const json = await runSbm(['changed-bands', path, '--since', token, '--json']);
  t.is(json.exitCode, 0, json.stderr);
  const report = JSON.parse(json.stdout) as {
    token: string;
    totalBytes: number;
    bands: Array<{ index: number; deleted: boolean; offset: number; length: number; path: string }>;
  };
  t.regex(report.token, /^sbm1:/);
  t.is(report.totalBytes, 2 * MiB);
  t.deepEqual(
    report.bands.map((band) => [band.index, band.deleted, band.offset, band.length]),
    [
      [1, true, MiB, MiB],
      [5, false, 5 * MiB, MiB],
    ],
  );
  const empty = await runSbm(['changed-bands', path, '--since', next]);
  t.is(empty.exitCode, 0);
  t.is(empty.stdout, '');
});

test('--since accepts a snapshot name and an ISO-8601 time', async (t) => {
  const { path } = await setup(t);
  const created = await runSbm(['snapshot', 'create', path, 'nightly', '--json']);
  t.is(created.exitCode, 0, created.stderr);
  const before = new Date(Date.now() - 1).toISOString();
  await new Promise((resolve) => setTimeout(resolve, 20));
  await edit(path, (bundle) => bundle.write(4 * MiB, Buffer.from('x')));
  const bySnapshot = await runSbm(['changed-bands', path, '--since', 'nightly', '--relative']);
  t.is(bySnapshot.exitCode, 0, bySnapshot.stderr);
  t.is(bySnapshot.stdout, 'bands/4\n');
  const byTime = await runSbm(['changed-bands', path, '--since', before, '--relative']);
  t.is(byTime.exitCode, 0, byTime.stderr);
  t.true(byTime.stdout.split('\n').includes('bands/4'), byTime.stdout);
  const ancient = await runSbm(['changed-bands', path, '--since', '2001-01-01T00:00:00Z']);
  t.is(ancient.exitCode, 10);
  t.regex(ancient.stderr, /SBM_TOKEN_STALE: .*before change tracking began.*full backup required/);
});

test('foreign, stale (copied bundle), future and malformed tokens are refused; exit 10 = full backup', async (t) => {
  const { dir, path } = await setup(t);
  const other = join(dir, 'other.sparsebundle');
  await SparseBundle.create(other, { sizeBytes: 8 * MiB, bandSizeBytes: MiB }).then((bundle) => bundle.close());
  const token = (await runSbm(['token', path])).stdout.trim();
  const foreign = await runSbm(['changed-bands', other, '--since', token]);
  t.is(foreign.exitCode, 10);
  t.regex(foreign.stderr, /^sbm: SBM_TOKEN_FOREIGN: token belongs to bundle .*full backup required/m);
  t.is(foreign.stdout, '', 'never a list');
  const copy = join(dir, 'copy.sparsebundle');
  await cp(path, copy, { recursive: true });
  const stale = await runSbm(['changed-bands', copy, '--since', token]);
  t.is(stale.exitCode, 10);
  t.regex(stale.stderr, /SBM_TRACKING_RESET/);
  t.regex(stale.stderr, /SBM_TOKEN_STALE: .*copied.*full backup required/);
  const parts = token.split(':');
  parts[3] = String(Number(parts[3]) + 100);
  const future = await runSbm(['changed-bands', path, '--since', parts.join(':')]);
  t.is(future.exitCode, 10);
  t.regex(future.stderr, /SBM_TOKEN_FUTURE/);
  const malformed = await runSbm(['changed-bands', path, '--since', 'sbm1:nope']);
  t.is(malformed.exitCode, 2);
  t.regex(malformed.stderr, /SBM_BAD_TOKEN/);
});

test("a band edited behind sbm's back is listed with a SBM_FOREIGN_CHANGE warning", async (t) => {
  const { path } = await setup(t);
  const token = (await runSbm(['token', path])).stdout.trim();
  const handle = await open(join(path, 'bands', '2'), 'r+');
  await handle.write(Buffer.from('tampered'), 0, 8, 4096);
  await handle.close();
  const run = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.is(run.exitCode, 0, run.stderr);
  t.is(run.stdout, 'bands/2\n');
  t.regex(run.stderr, /sbm: warning SBM_FOREIGN_CHANGE: 1 band\(s\) changed behind sbm's back \(bands\/2\)/);
  const strict = await runSbm(['changed-bands', path, '--since', token, '--strict']);
  t.is(strict.exitCode, 0, 'already recorded: no second warning');
});

test('snapshot create | list | revert | delete through the CLI', async (t) => {
  const { path } = await setup(t);
  t.is((await runSbm(['snapshot', 'create', path, 'one'])).exitCode, 0);
  await edit(path, (bundle) => bundle.write(0, Buffer.alloc(MiB, 9)));
  t.is((await runSbm(['snapshot', 'create', path, 'two'])).exitCode, 0);
  const list = await runSbm(['snapshot', 'list', path, '--json']);
  t.is(list.exitCode, 0, list.stderr);
  const snapshots = (JSON.parse(list.stdout) as { snapshots: Array<{ name: string; uniqueBytes: number; token: string }> }).snapshots;
  t.deepEqual(
    snapshots.map((item) => item.name),
    ['one', 'two'],
  );
  t.true((snapshots[0]?.uniqueBytes ?? 0) >= MiB);
  const token = (await runSbm(['token', path])).stdout.trim();
  const revert = await runSbm(['snapshot', 'revert', path, 'one', '--json']);
  t.is(revert.exitCode, 0, revert.stderr);
  t.is((JSON.parse(revert.stdout) as { bandsChanged: number }).bandsChanged, 1);
  const changed = await runSbm(['changed-bands', path, '--since', token, '--relative']);
  t.is(changed.stdout, 'bands/0\n');
  t.is((await runSbm(['snapshot', 'delete', path, 'one'])).exitCode, 0);
  const missing = await runSbm(['snapshot', 'delete', path, 'one']);
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /SBM_NOT_FOUND/);
  const after = await runSbm(['snapshot', 'list', path]);
  t.regex(after.stdout, /^two\t/);
});
