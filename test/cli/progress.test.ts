// Progress on a TTY for every long operation: totals and rates in human units, the rate over the
// bytes read or written (never the holes skipped). The bar is drawn only on a terminal: these
// tests give sbm one with script(1), as a user's shell would.

import test from 'ava';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { etaOf, progressFields, progressReporter } from '../../cli/progress.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

test('the rate counts bytes moved, not the disk covered; totals and ETA in human units', (t) => {
  const fields = progressFields({ bytesDone: 64 * MIB, bytesTotal: 128 * MIB, bytesRead: MIB, bytesWritten: MIB }, 2);
  t.like(fields, { doneText: '64.0 MiB', totalText: '128 MiB', movedText: '1.00 MiB', rateText: '512 KiB/s', etaText: '2s' });
  t.like(progressFields({ bytesDone: 3, bytesTotal: 10, bytesWritten: 6 * MIB }, 1, 'bands'), {
    doneText: '3',
    totalText: '10 bands',
    movedText: '6.00 MiB',
    rateText: '6.00 MiB/s',
  });
  t.is(etaOf(1, 100, 10), '16m30s');
  t.is(etaOf(1, 1000, 10), '2h46m');
  t.is(etaOf(0, 10, 1), '?');
});

test('the bar goes to a terminal only, with the fields above', (t) => {
  let drawn = '';
  const terminal = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        drawn += String(chunk);
        done();
      },
    }),
    { isTTY: true, columns: 200 },
  );
  let clock = 0;
  const reporter = progressReporter('copying', true, { stream: terminal, now: () => clock });
  clock = 4000;
  reporter.onProgress?.({ bytesDone: 512 * MIB, bytesTotal: 1024 * MIB, bytesRead: 8 * MIB });
  reporter.stop();
  t.regex(drawn, /copying \[[^\]]*\] 50% \| 512 MiB of 1\.00 GiB \| read 8\.00 MiB at 2\.00 MiB\/s \| ETA 4s/);
  const pipe = Object.assign(new Writable({ write: (_chunk, _encoding, done) => done() }), { isTTY: false });
  t.is(progressReporter('copying', true, { stream: pipe }).onProgress, undefined, 'no bar into a pipe');
  t.is(progressReporter('copying', false, { stream: terminal }).onProgress, undefined, 'none with --no-progress or --json');
});

/** Cursor moves, colours and save/restore: what a terminal shows is the text between them. */
const TERMINAL_ESCAPES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]|${String.fromCharCode(27)}[78]`, 'g');

/** Runs sbm on a pseudo-terminal; returns what the terminal showed, escapes removed, one line per redraw. */
async function onTerminal(args: string[]): Promise<string> {
  const command = ['node', SBM_BIN, ...args].map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(' ');
  const result = await execa('script', ['-qec', command, '/dev/null'], { reject: false, env: { COLUMNS: '200' } });
  if (result.exitCode !== 0) throw new Error(`${args.join(' ')}: ${result.stdout}${result.stderr}`);
  return result.stdout.replace(TERMINAL_ESCAPES, '').replace(/[█░]/g, '').replace(/\r/g, '\n');
}

test('convert, export, backup, verify, restore and snapshot revert show progress on a terminal', async (t) => {
  await requireTool(t, 'script');
  const dir = await tempDir(t);
  const raw = join(dir, 'disk.raw');
  // 64 MiB disk holding 1 MiB of data: the rate must be about that 1 MiB.
  await writeFile(raw, randomBytes(MIB));
  await truncate(raw, 64 * MIB); // a hole, skipped without reading
  const bundle = join(dir, 'disk.sparsebundle');
  t.regex(
    await onTerminal(['convert', raw, bundle]),
    /converting \[\] 100% \| 64\.0 MiB of 64\.0 MiB \| read 1\.00 MiB at [\d.]+ [KMG]?i?B\/s \| ETA 0s/,
  );
  t.regex(
    await onTerminal(['export', bundle, join(dir, 'out.raw')]),
    /exporting \[\] 100% \| 64\.0 MiB of 64\.0 MiB \| read 1\.00 MiB at /,
  );
  t.is((await runSbm(['snapshot', 'create', bundle, 'before'])).exitCode, 0);
  t.regex(await onTerminal(['backup', bundle, join(dir, 'dest')]), /backing up \[\] 100% \| 1 of 1 bands \| copied 1\.00 MiB at /);
  t.regex(await onTerminal(['verify', join(dir, 'dest')]), /verifying \[\] 100% \| 1 of 1 bands \| hashed 1\.00 MiB at /);
  const backup = JSON.parse((await runSbm(['backups', join(dir, 'dest'), '--json'])).stdout).sets[0].backups[0].path as string;
  t.regex(
    await onTerminal(['restore', backup, join(dir, 'restored.sparsebundle')]),
    /restoring \[\] 100% \| 64\.0 MiB of 64\.0 MiB \| read 1\.00 MiB at /,
  );
  t.regex(await onTerminal(['snapshot', 'revert', bundle, 'before']), /reverting \[\] 100% \| \d+ of \d+ bands \| ETA 0s/);
  const quiet = await onTerminal(['convert', raw, join(dir, 'quiet.sparsebundle'), '--json']);
  t.notRegex(quiet, /converting \[/, 'no bar with --json');
});
