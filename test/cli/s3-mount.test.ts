// `sbm mount s3://BUCKET/PREFIX/SET/NAME` against a real Ceph RADOS Gateway: the backup served
// read-only over NBD (nbdcopy reads the whole disk, qemu-io's write is refused), the repository
// lease held while it is served so thin cannot collect its chunks, and released at shutdown;
// an encrypted repository's backup served with --stdinpass.

import test, { type ExecutionContext } from 'ava';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { type S3Gateway, newBucket, s3Gateway } from '../helpers/s3-gateway.js';
import { SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

/** `sbm mount URL --json` as a child; resolves with its report once the JSON is complete. */
async function startMount(t: ExecutionContext, url: string, env: Record<string, string>, input?: string) {
  const child = execa('node', [SBM_BIN, 'mount', url, '--json', ...(input === undefined ? [] : ['--stdinpass'])], {
    reject: false,
    env: { ...env, NO_COLOR: '1' },
    ...(input === undefined ? {} : { input }),
  });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  });
  let output = '';
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const report = await new Promise<{ uri: string; readOnly: boolean; sizeBytes: number; exportName: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sbm mount not ready: ${output} ${errors}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      try {
        resolve(JSON.parse(output));
        clearTimeout(timer);
      } catch {
        // not complete yet
      }
    });
    void child.then((result) => reject(new Error(`sbm mount exited ${result.exitCode}: ${errors}`)));
  });
  return { child, report };
}

async function leaseHolders(gateway: S3Gateway, bucket: string, key: string): Promise<Array<{ kind: string; pid: number }>> {
  const got = await gateway.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse((await got.Body?.transformToString()) ?? '{}').holders ?? [];
}

test('an S3 backup mounted read-only: nbdcopy reads the disk, writes are refused, the lease is held until shutdown', async (t) => {
  await requireTool(t, 'nbdcopy');
  await requireTool(t, 'qemu-io');
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 24 * MIB, bandSizeBytes: 4 * MIB });
  await bundle.write(MIB, randomBytes(5 * MIB));
  await bundle.write(17 * MIB + 12_345, randomBytes(70_000));
  await bundle.close();
  const made = await runSbm(['backup', disk, `s3://${bucket}/r`, '--json'], { env: gateway.env });
  t.is(made.exitCode, 0, made.stderr);
  const { url, name } = JSON.parse(made.stdout);

  const { child, report } = await startMount(t, url, gateway.env);
  t.like(report, { readOnly: true, sizeBytes: 24 * MIB, exportName: `vm-${name}` });
  t.deepEqual(
    (await leaseHolders(gateway, bucket, 'r/lease.json')).map((holder) => [holder.kind, holder.pid]),
    [['mount', child.pid]],
  );
  const copied = join(dir, 'copied.raw');
  const copy = await execa('nbdcopy', [report.uri, copied], { reject: false });
  t.is(copy.exitCode, 0, copy.stderr);
  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  t.true((await readFile(copied)).equals(await readFile(original)));
  const write = await execa('qemu-io', ['-f', 'raw', '-c', 'write -P 0x41 0 4096', report.uri], { reject: false });
  // qemu-io opens the export read-write and is told no: the export is read-only.
  t.not(write.exitCode, 0);
  t.regex(`${write.stdout}${write.stderr}`, /Permission denied|read-only|Operation not permitted/i);

  child.kill('SIGTERM');
  const ended = await child;
  t.is(ended.exitCode, 0, String(ended.stderr));
  t.deepEqual(await leaseHolders(gateway, bucket, 'r/lease.json'), [], 'the lease entry is released at shutdown');
});

test("an encrypted repository's backup mounts with --stdinpass; options that cannot apply are refused", async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 8 * MIB, bandSizeBytes: 4 * MIB });
  const data = randomBytes(MIB);
  await bundle.write(3 * MIB, data);
  await bundle.close();
  const made = await runSbm(['backup', disk, `s3://${bucket}/e`, '--encryption', '--stdinpass', '--json'], {
    env: gateway.env,
    input: 'pw',
  });
  t.is(made.exitCode, 0, made.stderr);
  const { url } = JSON.parse(made.stdout);
  for (const option of ['--writable-backup', '--snapshot=x', '--format=raw']) {
    const refused = await runSbm(['mount', url, option, '--stdinpass'], { env: gateway.env, input: 'pw' });
    t.is(refused.exitCode, 2, option);
    t.regex(refused.stderr, /^sbm: SBM_USAGE: --\S+ does not apply to an S3 backup/);
  }
  const { child, report } = await startMount(t, url, gateway.env, 'pw');
  t.true(report.readOnly);
  const read = await execa('nbdcopy', [report.uri, '-'], { encoding: 'buffer', reject: false });
  t.is(read.exitCode, 0);
  t.true(
    Buffer.from(read.stdout)
      .subarray(3 * MIB, 4 * MIB)
      .equals(data),
  );
  child.kill('SIGTERM');
  t.is((await child).exitCode, 0);
});
