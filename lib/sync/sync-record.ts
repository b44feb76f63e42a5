// What `sbm sync` remembers in <bundle>/.sbm/sync.json between runs:
//
//   token        the tracker token at which the record was true; a band the tracker reports as
//                changed since then (by sbm, or behind its back) has no trustworthy hash
//   hashes[n]    sha256 (base64url) of band n's bytes at that token, or null when unknown
//   source       the chain the bundle then equalled, base layer first: each layer's identity and
//                (above the base) the runs it allocated, or absent when the source moved while
//                it was read
//
// The record is only ever a shortcut: a refused token, a different band size or a damaged file
// makes sync ignore it and compare everything. It is replaced atomically after a sync finished.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundlePaths } from '../bundle/bundle-paths.js';
import { fromSystemError } from '../errors.js';
import { replaceFile } from '../fs/atomic-write.js';
import type { WarningSink } from '../warnings.js';
import type { FileIdentity, LayerIdentity } from './layer-identity.js';

export const SYNC_RECORD_VERSION = 1;

export interface RecordedLayer extends LayerIdentity {
  /** [offset, length] runs the layer answered itself; empty for the base (never needed). */
  readonly allocated: ReadonlyArray<readonly [number, number]>;
}

export interface SyncRecord {
  readonly version: number;
  readonly token: string;
  readonly sizeBytes: number;
  readonly bandSizeBytes: number;
  readonly syncedAt: string;
  readonly hashes: ReadonlyArray<string | null>;
  readonly source?: { readonly sizeBytes: number; readonly layers: readonly RecordedLayer[] };
}

export function syncRecordPath(bundlePath: string): string {
  return join(bundlePaths(bundlePath).sbm, 'sync.json');
}

/** The record, or undefined when there is none or it cannot be used (warned). */
export async function readSyncRecord(bundlePath: string, onWarning: WarningSink): Promise<SyncRecord | undefined> {
  let text: string;
  try {
    text = await readFile(syncRecordPath(bundlePath), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'cannot read the sync record', syncRecordPath(bundlePath));
  }
  try {
    const value: unknown = JSON.parse(text);
    if (isSyncRecord(value)) return value;
  } catch {
    // falls through to the warning: a damaged record only costs a full compare
  }
  onWarning({
    code: 'SBM_SYNC_RECORD_IGNORED',
    message: `${syncRecordPath(bundlePath)} is not a usable sync record; every band is compared`,
  });
  return undefined;
}

export async function writeSyncRecord(bundlePath: string, record: SyncRecord): Promise<void> {
  const paths = bundlePaths(bundlePath);
  try {
    await replaceFile(syncRecordPath(bundlePath), Buffer.from(JSON.stringify(record)), paths.tmp);
  } catch (error) {
    throw fromSystemError(error, 'cannot write the sync record', syncRecordPath(bundlePath));
  }
}

function isSyncRecord(value: unknown): value is SyncRecord {
  if (!isObject(value)) return false;
  const { version, token, sizeBytes, bandSizeBytes, hashes, source } = value;
  if (version !== SYNC_RECORD_VERSION || typeof token !== 'string' || !isCount(sizeBytes) || !isCount(bandSizeBytes)) return false;
  if (!Array.isArray(hashes) || !hashes.every((hash) => hash === null || typeof hash === 'string')) return false;
  if (source === undefined) return true;
  return isObject(source) && isCount(source.sizeBytes) && Array.isArray(source.layers) && source.layers.every(isRecordedLayer);
}

function isRecordedLayer(value: unknown): boolean {
  if (!isObject(value) || !isObject(value.ids) || !Array.isArray(value.files) || !Array.isArray(value.allocated)) return false;
  if (!Object.values(value.ids).every((id) => typeof id === 'string')) return false;
  if (!value.files.every(isFileIdentity)) return false;
  return value.allocated.every((run: unknown) => Array.isArray(run) && run.length === 2 && isCount(run[0]) && isCount(run[1]));
}

function isFileIdentity(value: unknown): value is FileIdentity {
  return isObject(value) && ['path', 'dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'].every((key) => typeof value[key] === 'string');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
