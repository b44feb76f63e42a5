// `sbm sync --at-snapshot NAME`: the file that holds a source chain as it was at a VM snapshot,
// so a sync reads the frozen layers and skips the running top. VMware lists its snapshots in the
// VM's .vmsd beside the disks:
//
//   snapshot0.displayName = "Before update"
//   snapshot0.disk0.fileName = "disk-000001.vmdk"     the link that froze when it was taken
//
// NAME may also name a layer of the chain by file name (any format with layers: a qcow2 backing
// file, a VMDK link).

import { readFile, readdir, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { BlockDevice } from '../block-device.js';
import { SbmError } from '../errors.js';
import { type ImageLayer, isLayered } from '../image-layers.js';

const VMSD_LINE = /^\s*([A-Za-z0-9_.:]+)\s*=\s*"(.*)"\s*$/;

export async function snapshotLayerPath(layers: readonly ImageLayer[], name: string): Promise<string> {
  const chain: Array<{ file: string; real: string }> = [];
  for (const layer of layers) {
    const file = layer.files[0];
    if (file !== undefined) chain.push({ file, real: await realpath(file).catch(() => resolve(file)) });
  }
  const top = chain[0];
  if (top === undefined) throw new SbmError('SBM_UNSUPPORTED', 'the source has no layer files to choose a snapshot from');
  const folder = dirname(top.file);
  const searched: string[] = [];
  for (const vmsd of (await readdir(folder).catch(() => [] as string[])).filter((entry) => entry.toLowerCase().endsWith('.vmsd'))) {
    searched.push(vmsd);
    for (const candidate of snapshotDisks(await readFile(join(folder, vmsd), 'utf8'), name)) {
      const path = isAbsolute(candidate) ? candidate : join(folder, candidate);
      const real = await realpath(path).catch(() => undefined);
      const link = chain.find((entry) => entry.real === real);
      if (link !== undefined) return link.file;
    }
  }
  const byName = chain.find((entry) => basename(entry.file) === name || entry.file === name || entry.real === resolve(name));
  if (byName !== undefined) return byName.file;
  const where = searched.length === 0 ? 'no .vmsd beside the disk' : `not in ${searched.join(', ')}`;
  throw new SbmError('SBM_NOT_FOUND', `no snapshot "${name}" of ${top.file} (${where}, and no layer of the chain has that file name)`, {
    name,
  });
}

/**
 * Refuses a chain reopened at `path` that is not the original chain from that layer down (a
 * Parallels .hds opened alone is one layer without its parents): reading it would sync holes
 * where the parents hold data.
 */
export async function assertSameChainBelow(original: readonly ImageLayer[], path: string, reopened: BlockDevice): Promise<void> {
  const real = async (file: string): Promise<string> => realpath(file).catch(() => resolve(file));
  const key = async (layer: ImageLayer): Promise<string> => JSON.stringify(await Promise.all(layer.files.map(real)));
  const target = await real(path);
  let level = -1;
  for (const [index, layer] of original.entries()) {
    if (layer.files[0] !== undefined && (await real(layer.files[0])) === target) level = index;
  }
  const expected = await Promise.all(original.slice(Math.max(level, 0)).map(key));
  const actual = isLayered(reopened) ? await Promise.all(reopened.layers().map(key)) : [];
  if (level < 0 || JSON.stringify(expected) !== JSON.stringify(actual)) {
    throw new SbmError('SBM_UNSUPPORTED', `${path} opened alone is not the chain below it: this format cannot be synced --at-snapshot`, {
      path,
    });
  }
}

/** The disk files the .vmsd lists for every snapshot whose display name is `name`. */
function snapshotDisks(text: string, name: string): string[] {
  const values = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const match = VMSD_LINE.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1].toLowerCase(), decodeVmx(match[2]));
  }
  const disks: string[] = [];
  for (const [key, value] of values) {
    const snapshot = /^(snapshot\d+)\.displayname$/.exec(key)?.[1];
    if (snapshot === undefined || value !== name) continue;
    for (const [diskKey, file] of values) if (diskKey.startsWith(`${snapshot}.disk`) && diskKey.endsWith('.filename')) disks.push(file);
  }
  return disks;
}

/** VMware's config files escape characters as |XX (hex). */
function decodeVmx(value: string): string {
  return value.replace(/\|([0-9a-fA-F]{2})/g, (_match, code: string) => String.fromCharCode(Number.parseInt(code, 16)));
}
