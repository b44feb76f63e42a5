// Which bands a delta sync compares. The bundle equalled the recorded chain R (base first) at the
// record's token; the source is now the chain C. Let j be the first level where C differs from R
// (a new delta, a layer written since, a merge, a layer gone). Below j both chains are the same
// bytes, so the two disks can differ only where a layer at level j or above, of either chain,
// answers for itself: the runs R's upper layers allocated (kept in the record) and the runs C's
// upper layers allocate now. Bands the tracker reports changed in the bundle since the token are
// compared whole on top. A changed base (j = 0) is a full compare.
//
//   R:  base  d1  d2            C:  base  d1  d2  d3  d4      j = 3: read d3 and d4's runs
//   R:  base  d1  d2            C:  base  d1'                 j = 1: R's d1, d2 runs + C's d1'

import type { ImageLayer } from '../image-layers.js';
import { type BandWork, type ByteRun, COMPARE_CHUNK_BYTES } from './band-pass.js';
import { type LayerIdentity, sameLayer } from './layer-identity.js';
import type { SyncRecord } from './sync-record.js';

export interface CurrentLayer {
  readonly layer: ImageLayer;
  readonly identity: LayerIdentity;
}

export type DeltaPlan = { readonly kind: 'delta'; readonly work: BandWork[] } | { readonly kind: 'full'; readonly reason: string };

/** `current` and the record's layers are base first. */
export async function planDelta(
  record: SyncRecord | undefined,
  current: readonly CurrentLayer[],
  sizeBytes: number,
  bandSizeBytes: number,
  changedBands: ReadonlySet<number> | undefined,
): Promise<DeltaPlan> {
  if (record === undefined || changedBands === undefined) return { kind: 'full', reason: 'no usable record of an earlier sync' };
  const source = record.source;
  if (source === undefined) return { kind: 'full', reason: 'the source changed while the last sync read it' };
  if (source.sizeBytes !== sizeBytes || record.sizeBytes !== sizeBytes) return { kind: 'full', reason: 'the disk size changed' };
  let level = 0;
  while (level < source.layers.length && level < current.length) {
    const recorded = source.layers[level];
    const now = current[level];
    if (recorded === undefined || now === undefined || !sameLayer(recorded, now.identity)) break;
    level++;
  }
  if (level === 0) return { kind: 'full', reason: 'the base layer is not the one last synced, or was written since' };
  const runs: ByteRun[] = [];
  for (const recorded of source.layers.slice(level)) for (const [offset, length] of recorded.allocated) runs.push({ offset, length });
  for (const now of current.slice(level)) runs.push(...(await now.layer.allocated(0, sizeBytes)));
  return { kind: 'delta', work: bandWork(alignRuns(runs, sizeBytes), sizeBytes, bandSizeBytes, changedBands) };
}

/** The runs widened to whole compare chunks, sorted and merged, inside the disk. */
export function alignRuns(runs: readonly ByteRun[], sizeBytes: number): ByteRun[] {
  const sorted = runs
    .filter((run) => run.length > 0 && run.offset < sizeBytes)
    .map((run) => {
      const start = Math.floor(run.offset / COMPARE_CHUNK_BYTES) * COMPARE_CHUNK_BYTES;
      const end = Math.min(sizeBytes, Math.ceil((run.offset + run.length) / COMPARE_CHUNK_BYTES) * COMPARE_CHUNK_BYTES);
      return { offset: start, length: end - start };
    })
    .sort((a, b) => a.offset - b.offset);
  const merged: ByteRun[] = [];
  for (const run of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && run.offset <= last.offset + last.length) {
      merged[merged.length - 1] = { offset: last.offset, length: Math.max(last.length, run.offset + run.length - last.offset) };
    } else {
      merged.push(run);
    }
  }
  return merged;
}

/** Cuts merged runs at band edges; a band covered whole, or changed in the bundle, is compared whole. */
function bandWork(runs: readonly ByteRun[], sizeBytes: number, bandSizeBytes: number, changedBands: ReadonlySet<number>): BandWork[] {
  const perBand = new Map<number, ByteRun[]>();
  for (const run of runs) {
    let at = run.offset;
    const end = run.offset + run.length;
    while (at < end) {
      const bandIndex = Math.floor(at / bandSizeBytes);
      const stop = Math.min(end, (bandIndex + 1) * bandSizeBytes);
      const list = perBand.get(bandIndex) ?? [];
      list.push({ offset: at, length: stop - at });
      perBand.set(bandIndex, list);
      at = stop;
    }
  }
  const bandCount = Math.ceil(sizeBytes / bandSizeBytes);
  for (const bandIndex of changedBands) if (bandIndex < bandCount) perBand.set(bandIndex, []);
  return [...perBand.keys()]
    .sort((a, b) => a - b)
    .map((bandIndex) => {
      const list = perBand.get(bandIndex) ?? [];
      const bandLength = Math.min(bandSizeBytes, sizeBytes - bandIndex * bandSizeBytes);
      const covered = list.reduce((sum, run) => sum + run.length, 0);
      return { bandIndex, runs: changedBands.has(bandIndex) || covered >= bandLength ? 'whole' : list };
    });
}
