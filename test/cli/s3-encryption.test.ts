// Encrypted S3 repositories (`sbm backup ... --encryption --stdinpass`) against a real Ceph RADOS
// Gateway: a round trip through every command, a bucket that holds no plaintext data and no disk
// names, wrong and missing passwords, a damaged chunk found by verify, and --encryption refused on
// a repository made without it.

import test from 'ava';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { type S3Gateway, newBucket, s3Gateway } from '../helpers/s3-gateway.js';
import { runSbm, tempDir } from '../helpers/tools.js';

const MIB = 1024 * 1024;
const PASSWORD = 'correct horse battery staple';

/** Every object of the bucket under `prefix`: key and body. */
async function objects(gateway: S3Gateway, bucket: string, prefix: string): Promise<Array<{ key: string; body: Buffer }>> {
  const listed = await gateway.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const all: Array<{ key: string; body: Buffer }> = [];
  for (const { Key: key = '' } of listed.Contents ?? []) {
    const got = await gateway.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    all.push({ key, body: Buffer.from((await got.Body?.transformToByteArray()) ?? []) });
  }
  return all;
}

test('an encrypted repository: backup, backups, restore, verify and thin; the bucket holds no plaintext', async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'secret-vm.sparsebundle');
  // Random data (incompressible: without encryption it would be stored as it is) and a text
  // that would survive in a plain chunk's deflate stream as literal bytes.
  const data = randomBytes(3 * MIB);
  const bundle = await SparseBundle.create(disk, { sizeBytes: 16 * MIB, bandSizeBytes: 4 * MIB });
  await bundle.write(0, data);
  await bundle.write(5 * MIB, Buffer.from('TOP-SECRET-LEDGER '.repeat(100)));
  await bundle.close();
  const repo = `s3://${bucket}/enc`;
  const env = gateway.env;

  const first = await runSbm(['backup', disk, repo, '--encryption', '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(first.exitCode, 0, first.stderr);
  t.like(JSON.parse(first.stdout), { mode: 'full', chunksUploaded: 4 });
  const again = await SparseBundle.open(disk);
  await again.write(MIB + 4096, Buffer.from('changed'));
  await again.close();
  // An existing encrypted repository needs no --encryption, only its password.
  const second = await runSbm(['backup', disk, repo, '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(second.exitCode, 0, second.stderr);
  const secondResult = JSON.parse(second.stdout);
  t.like(secondResult, { mode: 'tracked', chunksUploaded: 1, set: 'secret-vm' });

  const stored = await objects(gateway, bucket, 'enc/');
  const config = JSON.parse(stored.find((object) => object.key === 'enc/sbm-repository.json')?.body.toString() ?? '{}');
  t.like(config, { version: 2, encryption: { cipher: 'aes-256-gcm', kdf: { name: 'scrypt' } } });
  const chunkIds = new Set(
    [0, 1, 2].map((mib) =>
      createHash('sha256')
        .update(data.subarray(mib * MIB, (mib + 1) * MIB))
        .digest('hex'),
    ),
  );
  for (const { key, body } of stored) {
    t.false(key.includes('secret-vm'), `no disk name in ${key}`);
    t.false(
      [...chunkIds].some((id) => key.includes(id)),
      `${key} is not the plain sha256 of a chunk`,
    );
    if (key.endsWith('sbm-repository.json')) continue;
    for (const needle of [
      data.subarray(0, 64),
      data.subarray(2 * MIB, 2 * MIB + 64),
      Buffer.from('TOP-SECRET'),
      Buffer.from('secret-vm'),
    ]) {
      t.is(body.indexOf(needle), -1, `${key} holds plaintext`);
    }
    t.is(body.indexOf(Buffer.from('"bands"')), -1, `${key} is not a plain manifest`);
  }

  const listing = await runSbm(['backups', repo, '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(listing.exitCode, 0, listing.stderr);
  const listed = JSON.parse(listing.stdout);
  t.deepEqual(
    listed.sets.map((set: { set: string; backups: unknown[] }) => [set.set, set.backups.length]),
    [['secret-vm', 2]],
  );
  const original = join(dir, 'original.raw');
  t.is((await runSbm(['export', disk, original, '--format', 'raw'])).exitCode, 0);
  const restore = await runSbm(['restore', secondResult.url, join(dir, 'restored.raw'), '--stdinpass'], { env, input: PASSWORD });
  t.is(restore.exitCode, 0, restore.stderr);
  t.true((await readFile(join(dir, 'restored.raw'))).equals(await readFile(original)));
  const verify = await runSbm(['verify', repo, '--stdinpass'], { env, input: PASSWORD });
  t.is(verify.exitCode, 0, verify.stderr);
  t.regex(verify.stdout, /ok: 2 backup\(s\), 5 of 5 chunks verified/);
  const thin = await runSbm(['thin', `${repo}/secret-vm`, '--keep-last', '1', '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(thin.exitCode, 0, thin.stderr);
  t.like(JSON.parse(thin.stdout), { chunksDeleted: 1, chunksKept: 4 });
  const after = await runSbm(['restore', secondResult.url, join(dir, 'after-thin.raw'), '--stdinpass'], { env, input: PASSWORD });
  t.is(after.exitCode, 0, after.stderr);
  t.true((await readFile(join(dir, 'after-thin.raw'))).equals(await readFile(original)));
});

test('wrong or missing password, a damaged chunk, and --encryption on a plain repository: one line, a code, nothing written', async (t) => {
  const gateway = await s3Gateway(t);
  const bucket = await newBucket(t, gateway);
  const dir = await tempDir(t);
  const disk = join(dir, 'vm.sparsebundle');
  const bundle = await SparseBundle.create(disk, { sizeBytes: 8 * MIB, bandSizeBytes: 4 * MIB });
  await bundle.write(0, randomBytes(2 * MIB));
  await bundle.close();
  const env = gateway.env;
  const repo = `s3://${bucket}/enc`;
  const made = await runSbm(['backup', disk, repo, '--encryption', '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(made.exitCode, 0, made.stderr);
  const { url } = JSON.parse(made.stdout);
  const before = (await objects(gateway, bucket, '')).map((object) => object.key);

  const cases: Array<[string[], string | undefined, RegExp, number]> = [
    [['backups', repo, '--stdinpass'], 'wrong', /^sbm: SBM_BAD_PASSWORD: the password does not unlock the encrypted repository/, 1],
    [['backup', disk, repo, '--stdinpass'], 'wrong', /^sbm: SBM_BAD_PASSWORD: /, 1],
    [['restore', url, join(dir, 'x.raw'), '--stdinpass'], 'wrong', /^sbm: SBM_BAD_PASSWORD: /, 1],
    [['mount', url, '--stdinpass'], 'wrong', /^sbm: SBM_BAD_PASSWORD: /, 1],
    [['verify', repo], undefined, /^sbm: SBM_ENCRYPTED: .*is an encrypted repository: give its password with --stdinpass/, 4],
    [['backup', disk, `s3://${bucket}/plain`, '--encryption'], undefined, /^sbm: SBM_USAGE: --encryption needs a password/, 2],
    [['backup', disk, join(dir, 'folder'), '--encryption'], undefined, /^sbm: SBM_USAGE: --encryption applies to S3 repositories/, 2],
  ];
  for (const [args, input, expected, exitCode] of cases) {
    const result = await runSbm(args, { env, ...(input === undefined ? {} : { input }) });
    t.regex(result.stderr, expected, args.join(' '));
    t.is(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    t.is(result.exitCode, exitCode, args.join(' '));
  }
  t.deepEqual(
    (await objects(gateway, bucket, '')).map((object) => object.key),
    before,
    'no refused command wrote or deleted an object',
  );

  // A plain repository refuses --encryption: its next backups would otherwise look encrypted.
  const plainRepo = `s3://${bucket}/plain`;
  t.is((await runSbm(['backup', disk, plainRepo], { env })).exitCode, 0);
  const plainKeys = (await objects(gateway, bucket, 'plain/')).map((object) => object.key);
  const refused = await runSbm(['backup', disk, plainRepo, '--encryption', '--stdinpass'], { env, input: PASSWORD });
  t.is(refused.exitCode, 2);
  t.regex(refused.stderr, /^sbm: SBM_USAGE: .*is a repository without encryption; --encryption applies only when a repository is created/);
  t.deepEqual(
    (await objects(gateway, bucket, 'plain/')).map((object) => object.key),
    plainKeys,
  );

  // One chunk changed behind sbm's back (a bit flipped in its ciphertext): verify names it.
  const chunk = (await objects(gateway, bucket, 'enc/chunks/'))[0];
  if (chunk === undefined) return t.fail('no chunk stored');
  const at = chunk.body.length - 20;
  chunk.body.writeUInt8(chunk.body.readUInt8(at) ^ 1, at);
  await gateway.client.send(new PutObjectCommand({ Bucket: bucket, Key: chunk.key, Body: chunk.body }));
  const verify = await runSbm(['verify', repo, '--stdinpass', '--json'], { env, input: PASSWORD });
  t.is(verify.exitCode, 5, verify.stderr);
  const report = JSON.parse(verify.stdout);
  t.is(report.damaged.length, 1);
  t.regex(report.damaged[0].problem, /does not authenticate/);
  t.deepEqual(report.damaged[0].backups, [`vm/${JSON.parse(made.stdout).name}`]);
});
