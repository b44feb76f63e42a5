// sbm backup / backups / restore / verify / thin on s3:// addresses through the built binary,
// against a real Ceph RADOS Gateway: a round trip, a run killed with SIGKILL mid-upload, wrong
// credentials and a missing bucket, and the AWS SDK staying out of other commands.

import test from 'ava';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { type S3Gateway, newBucket, s3Gateway } from '../helpers/s3-gateway.js';
import { REPO_ROOT, SBM_BIN, requireTool, runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;

async function diskWithData(path: string, dataMiB: number): Promise<void> {
  const bundle = await SparseBundle.create(path, { sizeBytes: (dataMiB + 8) * MIB, bandSizeBytes: 4 * MIB });
  for (let mib = 0; mib < dataMiB; mib++) await bundle.write(mib * MIB, randomBytes(MIB));
  await bundle.close();
}

async function objectCount(gateway: S3Gateway, bucket: string, prefix: string): Promise<number> {
  const page = await gateway.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return page.KeyCount ?? 0;
}

test('backup, backups, restore (bundle, raw, vmdk), verify and thin on an s3:// repository', async (t) => {
  await requireTool(t, 'qemu-img');
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await diskWithData(disk, 6);
  const repo = `s3://${bucket}/backups/sbm`;
  // The endpoint from --endpoint rather than the environment.
  const { AWS_ENDPOINT_URL: endpoint = '', ...keysOnly } = gateway.env;
  const first = await runSbm(['backup', disk, repo, '--endpoint', endpoint, '--json'], { env: keysOnly });
  t.is(first.exitCode, 0, first.stderr);
  t.like(JSON.parse(first.stdout), { mode: 'full', chunksUploaded: 6 });
  const bundle = await SparseBundle.open(disk);
  await bundle.write(2 * MIB + 17, Buffer.from('second'));
  await bundle.close();
  const second = await runSbm(['backup', disk, repo, '--json'], { env: gateway.env });
  t.is(second.exitCode, 0, second.stderr);
  const secondResult = JSON.parse(second.stdout);
  t.like(secondResult, { mode: 'tracked', chunksUploaded: 1, bandsUnchanged: 1 });
  t.is(secondResult.url, `${repo}/vm/${secondResult.name}`);

  const listing = await runSbm(['backups', repo, '--json'], { env: gateway.env });
  t.is(listing.exitCode, 0, listing.stderr);
  const listed = JSON.parse(listing.stdout);
  t.like(listed, { input: repo, kind: 'repository', warnings: [] });
  t.deepEqual(
    listed.sets.map((set: { set: string }) => set.set),
    ['vm'],
  );
  const backups = listed.sets[0].backups;
  t.is(backups.length, 2);
  t.is(backups[1].url, secondResult.url);
  const ofSet = await runSbm(['backups', `${repo}/vm`], { env: gateway.env });
  t.regex(ofSet.stdout, /^vm:\n {2}NAME +TIME \(UTC\) +DISK +BANDS +CHUNKS +UPLOADED +MODE\n/);
  t.is(ofSet.stdout.trim().split('\n').length, 4, ofSet.stdout);
  const ofBackup = JSON.parse((await runSbm(['backups', secondResult.url, '--json'], { env: gateway.env })).stdout);
  t.like(ofBackup, { kind: 'backup' });
  t.is(ofBackup.sets[0].backups.length, 1);

  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  for (const target of ['restored.sparsebundle', 'restored.raw', 'restored.vmdk']) {
    const restore = await runSbm(['restore', secondResult.url, join(dir, target)], { env: gateway.env });
    t.is(restore.exitCode, 0, `${target}: ${restore.stderr}`);
  }
  t.is((await runSbm(['compare', disk, join(dir, 'restored.sparsebundle')])).exitCode, 0);
  t.true((await readFile(join(dir, 'restored.raw'))).equals(await readFile(original)));
  t.is(
    (await execa('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', join(dir, 'restored.vmdk'), original], { reject: false })).exitCode,
    0,
  );

  const verify = await runSbm(['verify', repo], { env: gateway.env });
  t.is(verify.exitCode, 0, verify.stderr);
  t.regex(verify.stdout, /ok: 2 backup\(s\), 7 of 7 chunks verified/);
  const thin = await runSbm(['thin', repo, '--keep-last', '1', '--json'], { env: gateway.env });
  t.is(thin.exitCode, 0, thin.stderr);
  t.like(JSON.parse(thin.stdout), { chunksDeleted: 1, chunksKept: 6 });
  t.is(await objectCount(gateway, bucket, 'backups/sbm/chunks/'), 6);
  const restoredAgain = await runSbm(['restore', secondResult.url, join(dir, 'again.raw')], { env: gateway.env });
  t.is(restoredAgain.exitCode, 0, restoredAgain.stderr);
  t.true((await readFile(join(dir, 'again.raw'))).equals(await readFile(original)));
});

test('a backup killed mid-upload leaves no backup; the next run reuses its chunks and is complete', async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const dataMiB = 64;
  await diskWithData(disk, dataMiB);
  const repo = `s3://${bucket}/r`;
  const env = { ...gateway.env, SBM_S3_LEASE_SECONDS: '3' };
  const child = execa('node', [SBM_BIN, 'backup', disk, repo], { reject: false, env });
  let seen = 0;
  while (seen < 4 && child.exitCode === null) {
    seen = await objectCount(gateway, bucket, 'r/chunks/');
  }
  child.kill('SIGKILL');
  const killed = await child;
  t.is(killed.signal, 'SIGKILL', `the backup was still running when killed (${seen} chunks stored): ${killed.stdout}`);
  t.is(await objectCount(gateway, bucket, 'r/backups/'), 0, 'no manifest: nothing looks like a backup');
  const none = await runSbm(['backups', repo], { env });
  t.not(none.exitCode, 0);
  t.regex(none.stderr, /^sbm: SBM_NOT_A_BACKUP: .*holds no backups\n$/);
  const stored = await objectCount(gateway, bucket, 'r/chunks/');

  const rerun = await runSbm(['backup', disk, repo, '--json'], { env });
  t.is(rerun.exitCode, 0, rerun.stderr);
  const result = JSON.parse(rerun.stdout);
  t.is(result.chunksUploaded + result.chunksReused, dataMiB);
  t.true(result.chunksReused >= stored, `reused ${result.chunksReused} of the ${stored} chunks the killed run stored`);
  t.true(result.bytesUploaded <= (dataMiB - stored) * (MIB + 1));
  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  const restored = await runSbm(['restore', result.url, join(dir, 'restored.raw')], { env });
  t.is(restored.exitCode, 0, restored.stderr);
  t.true((await readFile(join(dir, 'restored.raw'))).equals(await readFile(original)));
  // The killed run's lease entry expires (3 s here) and thin goes ahead.
  const thin = await runSbm(['thin', repo, '--keep-last', '1'], { env });
  t.is(thin.exitCode, 0, thin.stderr);
  t.is((await runSbm(['verify', repo], { env })).exitCode, 0);
});

test('wrong keys, a missing bucket, an unreachable endpoint and a missing backup: one line with a code, exit 1', async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await diskWithData(disk, 1);
  const encrypted = join(dir, 'secret.sparsebundle');
  const made = await runSbm(['create', encrypted, '--size', '8M', '--encryption', 'AES-256', '--stdinpass'], { input: 'pw' });
  t.is(made.exitCode, 0, made.stderr);
  const wrongSecret = { ...gateway.env, AWS_SECRET_ACCESS_KEY: `${gateway.secretAccessKey}x` };
  const unreachable = { ...gateway.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' };
  const cases: Array<[string[], Record<string, string>, RegExp, number]> = [
    [['backup', disk, `s3://${bucket}/r`], wrongSecret, /^sbm: SBM_S3_CREDENTIALS: .*refused the credentials.*SignatureDoesNotMatch/, 1],
    [
      ['backups', `s3://${bucket}/r`],
      { ...gateway.env, AWS_ACCESS_KEY_ID: 'NOSUCHKEY' },
      /^sbm: SBM_S3_CREDENTIALS: .*InvalidAccessKeyId/,
      1,
    ],
    [
      ['backup', disk, `s3://no-such-bucket-${process.pid}/r`],
      gateway.env,
      /^sbm: SBM_S3_NO_BUCKET: bucket "no-such-bucket-\d+" does not exist/,
      1,
    ],
    [['verify', 's3://bucket/r'], unreachable, /^sbm: SBM_S3_UNREACHABLE: cannot reach http:\/\/127\.0\.0\.1:9/, 1],
    [['restore', `s3://${bucket}/r/vm/2020-01-01-000000`, join(dir, 'x.raw')], gateway.env, /^sbm: SBM_NOT_A_BACKUP: /, 4],
    [['backups', 's3://'], gateway.env, /^sbm: SBM_USAGE: /, 2],
    [
      ['backup', encrypted, `s3://${bucket}/r`, '--stdinpass'],
      gateway.env,
      /^sbm: SBM_UNSUPPORTED: .*encrypted bundle.*nothing was uploaded/,
      4,
    ],
  ];
  for (const [args, env, expected, exitCode] of cases) {
    const result = await runSbm(args, { env, input: 'pw' });
    t.regex(result.stderr, expected, args.join(' '));
    t.is(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    t.is(result.exitCode, exitCode, args.join(' '));
  }
  t.is(await objectCount(gateway, bucket, 'r/'), 0, 'a refused backup wrote nothing');
});

test('the AWS SDK is bundled into the S3 chunk only, loaded by a dynamic import', async (t) => {
  const chunks = join(REPO_ROOT, 'dist', 'cli', 'chunks');
  const files = (await readdir(chunks)).filter((name) => name.endsWith('.js'));
  const withSdk: string[] = [];
  for (const name of files) if ((await readFile(join(chunks, name), 'utf8')).includes('S3Client')) withSdk.push(name);
  t.deepEqual(
    withSdk.map((name) => name.replace(/-[A-Z0-9]+\.js$/, '')),
    ['s3-actions'],
  );
  const entry = await readFile(join(REPO_ROOT, 'dist', 'cli', 'sbm.js'), 'utf8');
  t.false(entry.includes('S3Client'));
  t.notRegex(entry, /^import[^;]*s3-actions/m, 'the entry never imports the S3 chunk statically');
});

test('credentials and region from a profile in the AWS shared config and credentials files', async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  await diskWithData(disk, 1);
  const credentials = join(dir, 'credentials');
  const config = join(dir, 'config');
  await writeFile(
    credentials,
    `[default]\naws_access_key_id = NOTTHEONE\naws_secret_access_key = wrong\n\n` +
      `[backup]\naws_access_key_id = ${gateway.accessKeyId}\naws_secret_access_key = ${gateway.secretAccessKey}\n`,
  );
  await writeFile(config, '[default]\nregion = us-east-1\n\n[profile backup]\nregion = us-east-1\n');
  // Nothing but the endpoint and the files: no key or region in the environment.
  const files = { AWS_ENDPOINT_URL: gateway.endpoint, AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config };
  const repo = `s3://${bucket}/profiles`;
  const made = await runSbm(['backup', disk, repo, '--json'], { env: { ...files, AWS_PROFILE: 'backup' } });
  t.is(made.exitCode, 0, made.stderr);
  t.like(JSON.parse(made.stdout), { mode: 'full', chunksUploaded: 1 });
  const listed = await runSbm(['backups', repo, '--json'], { env: { ...files, AWS_PROFILE: 'backup' } });
  t.is(listed.exitCode, 0, listed.stderr);
  t.is(JSON.parse(listed.stdout).sets[0].backups.length, 1);
  // The default profile's keys are refused: the profile, not something else, chose the keys.
  const refused = await runSbm(['backups', repo], { env: files });
  t.is(refused.exitCode, 1);
  t.regex(refused.stderr, /^sbm: SBM_S3_CREDENTIALS: /);
});
