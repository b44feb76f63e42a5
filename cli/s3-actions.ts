// The S3 side of backup, backups, restore, verify and thin, for destinations written
// s3://BUCKET/PREFIX. Command modules load this file with a dynamic import only when given such an
// address, so the AWS SDK (bundled into this chunk) costs nothing to any other command.

import type { BackupSource } from '../lib/backup/create-backup.js';
import { createS3Backup } from '../lib/backup/s3/s3-backup.js';
import { S3BackupDevice } from '../lib/backup/s3/s3-backup-device.js';
import { backupsOf, describeS3Backups, openS3Target, verifyS3Backups } from '../lib/backup/s3/s3-catalog.js';
import { type S3Location, formatS3Url, parseS3Url } from '../lib/backup/s3/s3-location.js';
import { s3ObjectStore } from '../lib/backup/s3/s3-object-store.js';
import { S3Repository } from '../lib/backup/s3/s3-repository.js';
import { acquireLease } from '../lib/backup/s3/s3-lease.js';
import { thinS3Backups } from '../lib/backup/s3/s3-thin.js';
import type { PasswordSource } from '../lib/bundle/bundle-encryption.js';
import type { ThinPolicy } from '../lib/backup/thin-backups.js';
import type { BlockDevice } from '../lib/block-device.js';
import { SbmError } from '../lib/errors.js';
import { formatSize } from '../lib/size.js';
import type { SbmWarning, WarningSink } from '../lib/warnings.js';
import { printJson, printLine } from './command-kit.js';
import { printTable } from './table.js';

/** How a command reaches a repository: the endpoint, and the password should it be encrypted. */
export interface S3Access {
  readonly endpoint?: string;
  readonly password: PasswordSource;
}

function storeFor(url: string, access: S3Access) {
  const location = parseS3Url(url);
  const { endpoint } = access;
  return { location, store: s3ObjectStore({ bucket: location.bucket, ...(endpoint === undefined ? {} : { endpoint }) }) };
}

const onLeaseWait = (holder: string) => process.stderr.write(`sbm: waiting for the repository lease held by a ${holder}\n`);

export interface S3BackupCall {
  readonly bundle: string;
  readonly dest: string;
  readonly access: S3Access;
  /** Create the repository encrypted (--encryption). */
  readonly encrypt: boolean;
  readonly json: boolean;
  readonly showProgress: boolean;
  readonly policy?: ThinPolicy;
  readonly onWarning: WarningSink;
  /** Warnings collected so far (for --json). */
  readonly warnings: readonly SbmWarning[];
}

export async function backupToS3(source: BackupSource, call: S3BackupCall): Promise<void> {
  const { location, store } = storeFor(call.dest, call.access);
  const result = await createS3Backup(source, store, location.prefix, {
    onWarning: call.onWarning,
    encrypt: call.encrypt,
    password: call.access.password,
    lease: { onWait: onLeaseWait },
    onProgress: call.showProgress
      ? ({ bandsDone, bandsTotal, bytesUploaded }) =>
          process.stderr.write(`\rbacking up: ${bandsDone}/${bandsTotal} bands, ${formatSize(bytesUploaded)} uploaded`)
      : undefined,
  });
  if (call.showProgress) process.stderr.write('\n');
  const url = formatS3Url(location, result.set, result.name);
  let thinned: Awaited<ReturnType<typeof thinS3Backups>> | undefined;
  if (call.policy !== undefined) {
    const repository = (await S3Repository.open(store, location.prefix, { password: call.access.password })) as S3Repository;
    thinned = await thinS3Backups(repository, call.policy, { set: result.set });
  }
  if (call.json) printJson({ input: call.bundle, output: url, url, ...result, thinned, warnings: call.warnings });
  else {
    printLine(
      `backup ${url}: ${result.chunksUploaded} chunks uploaded (${formatSize(result.bytesUploaded)}), ${result.chunksReused} reused, ` +
        `${result.bandsUnchanged} bands unchanged, in ${result.seconds.toFixed(2)} s (${result.mode})`,
    );
    const deleted = thinned?.sets.flatMap((set) => set.deleted) ?? [];
    if (deleted.length > 0) printLine(`thinned: deleted ${deleted.join(', ')}`);
  }
}

export async function listS3Backups(url: string, access: S3Access, json: boolean): Promise<void> {
  const { location, store } = storeFor(url, access);
  const target = await openS3Target(store, location, { password: access.password });
  const backups = await describeS3Backups(target);
  if (backups.length === 0) throw new SbmError('SBM_NOT_A_BACKUP', `${url} holds no backups`, { url });
  const sets = new Map<string, Array<(typeof backups)[number] & { url: string }>>();
  for (const backup of backups) {
    const list = sets.get(backup.set) ?? [];
    list.push({ ...backup, url: repositoryUrl(location, target, backup.set, backup.name) });
    sets.set(backup.set, list);
  }
  const ordered = [...sets].sort(([a], [b]) => a.localeCompare(b));
  if (json) {
    const kind = target.name !== undefined ? 'backup' : target.set !== undefined ? 'set' : 'repository';
    printJson({ input: url, kind, sets: ordered.map(([set, list]) => ({ set, backups: list })), warnings: [] });
    return;
  }
  for (const [set, list] of ordered) {
    printLine(`${set}:`);
    printTable(
      ['NAME', 'TIME (UTC)', 'DISK', 'BANDS', 'CHUNKS', 'UPLOADED', 'MODE'],
      list.map((backup) => [
        backup.name,
        backup.time.replace('T', ' ').replace(/\.\d+Z$/, ''),
        formatSize(backup.sizeBytes),
        String(backup.bands),
        String(backup.chunks),
        formatSize(backup.bytesUploaded),
        backup.mode,
      ]),
      { indent: '  ', alignRight: [2, 3, 4, 5] },
    );
  }
}

/** The address of a backup, from the address the user gave (which may name the set or backup already). */
function repositoryUrl(location: S3Location, target: { set?: string; name?: string }, set: string, name: string): string {
  const levels = target.name !== undefined ? 2 : target.set !== undefined ? 1 : 0;
  const parts = location.prefix.split('/').filter((part) => part !== '');
  return formatS3Url({ bucket: location.bucket, prefix: parts.slice(0, parts.length - levels).join('/') }, set, name);
}

export interface OpenedS3Backup {
  readonly device: BlockDevice;
  readonly bandSizeBytes: number;
  /**
   * Never set: a restored bundle is not encrypted (an encrypted repository's password is not a
   * bundle's, and encrypted bundles are refused at backup).
   */
  readonly encryption?: string;
}

/**
 * One backup (`s3://BUCKET/PREFIX/<set>/<name>`) as a read-only device. It holds a shared lease
 * on the repository until closed, so no thin collects the chunks it still has to read.
 */
export async function openS3Backup(url: string, access: S3Access, use: 'restore' | 'mount'): Promise<OpenedS3Backup> {
  const { location, store } = storeFor(url, access);
  const target = await openS3Target(store, location, { password: access.password });
  if (target.name === undefined || target.set === undefined) {
    throw new SbmError('SBM_USAGE', `${url} names a repository or set, not one backup: give s3://BUCKET/PREFIX/<set>/<backup>`, { url });
  }
  const lease = await acquireLease(target.repository, use, { onWait: onLeaseWait });
  try {
    const [entry] = await backupsOf(target);
    const manifest = await target.repository.readManifest(entry?.set ?? target.set, entry?.name ?? target.name);
    const device = new S3BackupDevice(target.repository, manifest, { onClose: () => lease.release() });
    return { device, bandSizeBytes: manifest.bandSizeBytes };
  } catch (error) {
    await lease.release();
    throw error;
  }
}

export async function verifyS3(url: string, access: S3Access, samplePercent: number | undefined, json: boolean): Promise<void> {
  const { location, store } = storeFor(url, access);
  const target = await openS3Target(store, location, { password: access.password });
  const report = await verifyS3Backups(target, samplePercent === undefined ? {} : { samplePercent });
  if (report.backupsChecked === 0) throw new SbmError('SBM_NOT_A_BACKUP', `${url} holds no backups`, { url });
  if (json) printJson({ input: url, ...report, ok: report.damaged.length === 0, warnings: [] });
  else {
    for (const chunk of report.damaged) {
      printLine(`damaged: ${chunk.url}: ${chunk.problem}; used by ${chunk.backups.join(', ')} (${chunk.bands.join(', ')})`);
    }
    if (report.damaged.length === 0) {
      printLine(`ok: ${report.backupsChecked} backup(s), ${report.chunksChecked} of ${report.chunksTotal} chunks verified`);
    }
  }
  if (report.damaged.length > 0) {
    throw new SbmError('SBM_VERIFY_FAILED', `${report.damaged.length} damaged chunk(s) in ${url}`, { damaged: report.damaged });
  }
}

export async function thinS3(url: string, access: S3Access, policy: ThinPolicy, dryRun: boolean, json: boolean): Promise<void> {
  const { location, store } = storeFor(url, access);
  const target = await openS3Target(store, location, { password: access.password });
  if (target.name !== undefined) throw new SbmError('SBM_USAGE', `${url} names one backup; thin takes a repository or a set`, { url });
  const result = await thinS3Backups(target.repository, policy, {
    ...(target.set === undefined ? {} : { set: target.set }),
    dryRun,
    lease: { onWait: onLeaseWait },
  });
  if (json) {
    printJson({ input: url, dryRun, ...result, warnings: [] });
    return;
  }
  const verb = dryRun ? 'would delete' : 'deleted';
  for (const set of result.sets) {
    printLine(`${set.set}: ${verb} ${set.deleted.length}, kept ${set.kept.length}`);
    if (dryRun) for (const name of set.deleted) printLine(`  would delete ${name}`);
  }
  printLine(`chunks: ${verb} ${result.chunksDeleted} (${formatSize(result.bytesFreed)}), kept ${result.chunksKept}`);
}
