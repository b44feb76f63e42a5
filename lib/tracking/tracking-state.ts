// .sbm/state: the tracker's small JSON state, replaced atomically (tmp + fsync + rename + fsync
// .sbm). It names the bundle (sbm's own random uuid: v1 plists have none, and copies share the
// plist's), the tracking epoch, the open generation, and where the bundle folder lived when the
// epoch began: a folder with another device/inode is a copy or a restore, so its history does
// not apply and tracking restarts with a new epoch.
//
// logMark is the tracker's durable high-water mark of changes.log: its length and CRC-32 when
// this state was written. Every write of the state names the log as far as it is durable, and
// the stat cache is only saved after a state naming the records it covers (change-tracker.ts).
// An open finding the log shorter than the mark, or its first mark.bytes different, knows records
// were lost: tracking restarts. A log longer than the mark is normal (records appended since).

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory, replaceFile } from '../fs/atomic-write.js';
import { CHANGE_RECORD_SIZE, GENERATION_TIMES_KEPT, STATE_FILE, STATE_FORMAT } from './constants.js';
import { readTrackingFile, removeIfNotFile } from './tracking-file.js';

/** A state file larger than this is not sbm's (4,096 kept generations take ~200 KiB). */
const STATE_MAX_BYTES = 1024 * 1024;

/** A prefix of changes.log: its length and the CRC-32 of those bytes. */
export interface LogMark {
  readonly bytes: number;
  readonly crc: number;
}

export interface TrackingState {
  readonly format: number;
  readonly bundleId: string;
  readonly epochId: string;
  readonly epochStartedAt: string;
  /** The open generation: changes happening now are recorded under it. */
  readonly generation: number;
  /** Device and inode of the bundle folder when the epoch began, as decimal strings. */
  readonly folder: { readonly dev: string; readonly ino: string };
  /** [generation, start time in ms since 1970] for the most recent generations, oldest first. */
  readonly generationStarts: ReadonlyArray<readonly [number, number]>;
  /** Why this epoch replaced an earlier one, for the message refusing older tokens. */
  readonly resetReason?: string;
  /** changes.log as far as it was durable when this state was written (absent: nothing known, the log is not held to a mark). */
  readonly logMark?: LogMark;
}

export type StateReadResult = { kind: 'missing' } | { kind: 'damaged'; reason: string } | { kind: 'ok'; state: TrackingState };

export async function readTrackingState(sbmDir: string): Promise<StateReadResult> {
  const read = await readTrackingFile(join(sbmDir, STATE_FILE), STATE_MAX_BYTES);
  if (read.kind !== 'ok') return read.kind === 'missing' ? read : { kind: 'damaged', reason: read.reason };
  const text = read.bytes.toString('utf8');
  try {
    const value = JSON.parse(text) as TrackingState;
    const valid =
      value.format === STATE_FORMAT &&
      typeof value.bundleId === 'string' &&
      /^[0-9a-f-]{36}$/.test(value.bundleId) &&
      typeof value.epochId === 'string' &&
      /^[0-9a-f]{8}$/.test(value.epochId) &&
      Number.isSafeInteger(value.generation) &&
      value.generation >= 1 &&
      typeof value.folder?.dev === 'string' &&
      typeof value.folder?.ino === 'string' &&
      Array.isArray(value.generationStarts) &&
      (value.logMark === undefined || validMark(value.logMark));
    return valid ? { kind: 'ok', state: value } : { kind: 'damaged', reason: 'fields missing or invalid' };
  } catch (error) {
    return { kind: 'damaged', reason: (error as Error).message };
  }
}

function validMark(mark: LogMark): boolean {
  return (
    Number.isSafeInteger(mark.bytes) &&
    mark.bytes >= 0 &&
    mark.bytes % CHANGE_RECORD_SIZE === 0 &&
    Number.isInteger(mark.crc) &&
    mark.crc >= 0 &&
    mark.crc <= 0xffffffff
  );
}

export async function writeTrackingState(sbmDir: string, tmpDir: string, state: TrackingState): Promise<void> {
  await removeIfNotFile(join(sbmDir, STATE_FILE)); // a folder there would make the rename fail
  await replaceFile(join(sbmDir, STATE_FILE), Buffer.from(`${JSON.stringify(state, null, 2)}\n`), tmpDir);
  await fsyncDirectory(sbmDir);
}

export async function folderIdentity(root: string): Promise<{ dev: string; ino: string }> {
  const info = await stat(root, { bigint: true });
  return { dev: info.dev.toString(), ino: info.ino.toString() };
}

/** A state for a new epoch: keeps the bundle id when there is one, starts at generation 1. */
export function newEpochState(
  bundleId: string | undefined,
  folder: { dev: string; ino: string },
  nowMs: number,
  resetReason?: string,
): TrackingState {
  return {
    ...(resetReason === undefined ? {} : { resetReason }),
    format: STATE_FORMAT,
    bundleId: bundleId ?? crypto.randomUUID(), // Web Crypto global: loaded only on this (rare) path
    epochId: Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString('hex'),
    epochStartedAt: new Date(nowMs).toISOString(),
    generation: 1,
    folder,
    generationStarts: [[1, nowMs]],
    logMark: { bytes: 0, crc: 0 },
  };
}

/** The state with generation + 1 started now. */
export function nextGeneration(state: TrackingState, nowMs: number): TrackingState {
  const generation = state.generation + 1;
  const starts = [...state.generationStarts, [generation, nowMs] as const].slice(-GENERATION_TIMES_KEPT);
  return { ...state, generation, generationStarts: starts };
}

export function epochTagOf(epochId: string): number {
  return Number.parseInt(epochId, 16) >>> 0;
}
