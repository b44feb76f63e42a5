// What changed between two backups, from their manifests alone (like `restic diff`): bands
// added, removed, and changed (same band, other sha256 or size). No band file is read, so the
// answer is as cheap as reading two JSON files and as trustworthy as the manifests (verify checks
// those against the bands).

import { type BackupManifest, readManifest } from './backup-manifest.js';

export interface BackupDiff {
  readonly from: string;
  readonly to: string;
  readonly bandSizeBytes: number;
  readonly fromSizeBytes: number;
  readonly toSizeBytes: number;
  /** Band names (lowercase hex), in band order. */
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
  readonly unchanged: number;
}

export async function diffBackups(fromPath: string, toPath: string): Promise<BackupDiff> {
  const from = await readManifest(fromPath);
  const to = await readManifest(toPath);
  return { from: fromPath, to: toPath, ...diffManifests(from, to) };
}

export function diffManifests(from: BackupManifest, to: BackupManifest): Omit<BackupDiff, 'from' | 'to'> {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  let unchanged = 0;
  for (const [name, record] of Object.entries(to.bands)) {
    const before = Object.hasOwn(from.bands, name) ? from.bands[name] : undefined;
    if (before === undefined) added.push(name);
    else if (before.sha256 !== record.sha256 || before.size !== record.size) changed.push(name);
    else unchanged++;
  }
  for (const name of Object.keys(from.bands)) if (!Object.hasOwn(to.bands, name)) removed.push(name);
  const byBand = (a: string, b: string) => Number.parseInt(a, 16) - Number.parseInt(b, 16);
  return {
    bandSizeBytes: to.bandSizeBytes,
    fromSizeBytes: from.sizeBytes,
    toSizeBytes: to.sizeBytes,
    added: added.sort(byBand),
    removed: removed.sort(byBand),
    changed: changed.sort(byBand),
    unchanged,
  };
}
