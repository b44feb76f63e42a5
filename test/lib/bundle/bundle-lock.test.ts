import test from 'ava';
import { execa } from 'execa';
import { join } from 'node:path';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { REPO_ROOT, tempDir } from '../../helpers/tools.js';

async function holdInChild(path: string, mode: 'rw' | 'ro') {
  const child = execa('node', ['--import=tsx', join(REPO_ROOT, 'test/helpers/hold-bundle.ts'), path, mode], {
    cwd: REPO_ROOT,
    stdin: 'pipe',
    reject: false,
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    void child.then((result) => reject(new Error(`child exited early: ${result.stderr}`)));
  });
  return {
    pid: child.pid,
    release: async () => {
      child.stdin?.end();
      await child;
    },
  };
}

test('a writer in another process excludes writers and readers here, naming its pid', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'locked.sparsebundle');
  await (await SparseBundle.create(path, { sizeBytes: 1 << 20, bandSizeBytes: 1 << 20 })).close();
  const holder = await holdInChild(path, 'rw');
  t.teardown(holder.release);
  await t.throwsAsync(SparseBundle.open(path), { message: new RegExp(`^SBM_LOCKED: bundle .* is in use by pid ${holder.pid}$`) });
  await t.throwsAsync(SparseBundle.open(path, { readOnly: true }), { message: /^SBM_LOCKED/ });
  await holder.release();
  const writer = await SparseBundle.open(path);
  await writer.close();
  t.pass();
});

test('readers in two processes coexist and keep writers out', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'shared.sparsebundle');
  await (await SparseBundle.create(path, { sizeBytes: 1 << 20, bandSizeBytes: 1 << 20 })).close();
  const reader = await holdInChild(path, 'ro');
  t.teardown(reader.release);
  const localReader = await SparseBundle.open(path, { readOnly: true });
  await localReader.close();
  await t.throwsAsync(SparseBundle.open(path), { message: /^SBM_LOCKED/ });
  await reader.release();
  await (await SparseBundle.open(path)).close();
});
