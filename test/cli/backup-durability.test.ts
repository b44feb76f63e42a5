// A backup's band copies are fsynced in the background while later bands are copied
// (lib/fs/pending-syncs.ts). What must still hold, seen from the system calls: every band file a
// backup writes has been fsynced before its manifest is created, so a backup that has a
// manifest never lists data that a crash could lose.

import test from 'ava';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { SBM_BIN, requireTool, runSbm, seededBytes, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** Paths whose fsync returned, and the line where each returned (strace -f -y -o: lines start with the pid). */
function completedFsyncs(lines: readonly string[]): Map<string, number> {
  const unfinished = new Map<string, string>(); // pid -> path of its fsync in progress
  const done = new Map<string, number>();
  lines.forEach((line, index) => {
    const pid = line.split(' ', 1)[0] ?? '';
    const started = /fsync\(\d+<([^>]+)>(\) = 0| <unfinished \.\.\.>)/.exec(line);
    if (started?.[2] === ') = 0') done.set(started[1] as string, index);
    else if (started !== null) unfinished.set(pid, started[1] as string);
    else if (/<\.\.\. fsync resumed>\) += 0/.test(line) && unfinished.has(pid)) {
      done.set(unfinished.get(pid) as string, index);
      unfinished.delete(pid);
    }
  });
  return done;
}

test('every band a backup copies is fsynced before the manifest that lists it is created', async (t) => {
  await requireTool(t, 'strace');
  const dir = await tempDir(t);
  const source = join(dir, 'disk.sparsebundle');
  t.is((await runSbm(['create', source, '--size', '64M', '--band-size', '1M'])).exitCode, 0);
  const bundle = await SparseBundle.open(source);
  // 40 bands of data: more than the copies in flight at once, so fsyncs overlap later copies.
  await bundle.write(0, seededBytes(40 * MIB, 7));
  await bundle.close();
  const trace = join(dir, 'strace.txt');
  const run = await execa(
    'strace',
    ['-f', '-y', '-o', trace, '-e', 'trace=fsync,openat', 'node', SBM_BIN, 'backup', source, join(dir, 'backups'), '--no-progress'],
    { reject: false },
  );
  t.is(run.exitCode, 0, run.stderr);
  const lines = (await readFile(trace, 'utf8')).split('\n');
  const manifestCreated = lines.findIndex((line) => /openat\(.*\.inProgress\/\.sbm\/manifest\.json".*O_CREAT/.test(line));
  t.true(manifestCreated > 0, 'the manifest is created');
  const bandsWritten = [
    ...new Set(
      lines.flatMap((line) => {
        const match = /openat\([^"]*"([^"]*\.inProgress\/bands\/[0-9a-f]+)".*O_CREAT/.exec(line);
        return match === null ? [] : [match[1] as string];
      }),
    ),
  ];
  t.is(bandsWritten.length, 40, 'one new file per band of data');
  const fsynced = completedFsyncs(lines);
  for (const band of bandsWritten) {
    // strace -y prints the absolute path; the openat shows it as passed.
    const done = [...fsynced].find(([path]) => path.endsWith(band.slice(band.indexOf('.inProgress/'))))?.[1];
    t.true(done !== undefined && done < manifestCreated, `${band} fsynced (line ${done}) before the manifest (line ${manifestCreated})`);
  }
});
