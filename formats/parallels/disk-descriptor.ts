// DiskDescriptor.xml: what a Parallels disk folder (NAME.hdd/) is made of. Parsed with the safe
// XML reader (formats/xml/safe-xml.ts) and validated before any image is opened:
//
//   Parallels_disk_image@Version=1.0
//     Disk_Parameters/Disk_size (sectors), Padding 0, Encryption/Engine all-zero, LogicSectorSize 512
//     StorageData/Storage*  Start/End (sectors, end to end from 0 to Disk_size), Blocksize, Image*
//       Image  GUID, Type (Compressed = expanding .hds | Plain = raw), File
//     Snapshots  TopGUID?, Shot* (GUID, ParentGUID)
//
// The chain is the top layer (TopGUID, else the predefined top GUID) then its parents up to the
// all-zero GUID; every storage must hold an image for each layer of the chain.

import { SbmError } from '../../lib/errors.js';
import { childText, children, parseXml } from '../xml/safe-xml.js';
import { MAX_CHAIN_DEPTH, MAX_DESCRIPTOR_BYTES, TOP_GUID, ZERO_GUID } from './constants.js';

export interface DescriptorImage {
  readonly guid: string;
  readonly type: 'Compressed' | 'Plain';
  readonly file: string;
}

export interface DescriptorStorage {
  readonly startSectors: number;
  readonly endSectors: number;
  readonly blockSectors: number;
  /** Images of this storage by GUID. */
  readonly images: ReadonlyMap<string, DescriptorImage>;
}

export interface DiskDescriptor {
  readonly diskSectors: number;
  readonly storages: readonly DescriptorStorage[];
  /** Layer GUIDs, the top (active) layer first, the root last. */
  readonly chain: readonly string[];
  readonly name: string | undefined;
  readonly uid: string | undefined;
  /** Miscellaneous/ChangeState and SuspendState as written (informational). */
  readonly changeState: string | undefined;
}

/** A GUID as compared: braces and whitespace stripped, lower case. */
export function normalizeGuid(text: string): string {
  return text.trim().replace(/^\{/, '').replace(/\}$/, '').toLowerCase();
}

class DescriptorReader {
  constructor(readonly path: string) {}

  corrupt(why: string): SbmError {
    return new SbmError('SBM_CORRUPT', `${this.path}: ${why}`, { path: this.path });
  }

  unsupported(why: string): SbmError {
    return new SbmError('SBM_UNSUPPORTED', `${this.path}: ${why}`, { path: this.path });
  }

  /** A strict decimal element; `fallback` when the element is absent and optional. */
  integer(element: unknown, name: string, fallback?: number): number {
    const text = childText(element, name);
    if (text === undefined || text === '') {
      if (fallback !== undefined) return fallback;
      throw this.corrupt(`<${name}> is missing`);
    }
    if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw this.corrupt(`<${name}> is not a whole number`);
    return Number(text);
  }

  guid(element: unknown, name: string): string {
    const text = childText(element, name);
    if (text === undefined || text === '') throw this.corrupt(`<${name}> is missing`);
    const guid = normalizeGuid(text);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(guid)) throw this.corrupt(`<${name}> is not a GUID`);
    return guid;
  }
}

export async function parseDiskDescriptor(bytes: Buffer, path: string): Promise<DiskDescriptor> {
  const reader = new DescriptorReader(path);
  const document = await parseXml(bytes, { what: 'Parallels disk descriptor', path, maxBytes: MAX_DESCRIPTOR_BYTES });
  const root = document.Parallels_disk_image;
  if (root === undefined || typeof root !== 'object') throw reader.corrupt('root element is not <Parallels_disk_image>');
  const version = (root as { $?: Record<string, string> }).$?.Version?.trim();
  if (version !== '1.0') throw reader.unsupported(`descriptor Version "${version ?? ''}" (only 1.0 is known)`);
  const parameters = children(root, 'Disk_Parameters')[0];
  if (parameters === undefined) throw reader.corrupt('<Disk_Parameters> is missing');
  const diskSectors = reader.integer(parameters, 'Disk_size');
  if (reader.integer(parameters, 'Padding', 0) !== 0) throw reader.unsupported('Padding 1 disks are not supported');
  const logical = reader.integer(parameters, 'LogicSectorSize', 512);
  if (logical !== 512) throw reader.unsupported(`logical sector size ${logical} (only 512 is supported)`);
  const engine = childText(children(parameters, 'Encryption')[0], 'Engine');
  if (engine !== undefined && engine !== '' && normalizeGuid(engine) !== ZERO_GUID) {
    throw reader.unsupported('the disk is encrypted by Parallels (Encryption/Engine is set); encrypted Parallels disks are not read');
  }
  const storages = parseStorages(reader, root, diskSectors);
  const chain = parseChain(reader, root, storages);
  const misc = children(parameters, 'Miscellaneous')[0];
  return {
    diskSectors,
    storages,
    chain,
    name: childText(parameters, 'Name'),
    uid: childText(parameters, 'UID'),
    changeState: childText(misc, 'ChangeState'),
  };
}

function parseStorages(reader: DescriptorReader, root: unknown, diskSectors: number): DescriptorStorage[] {
  const list = children(children(root, 'StorageData')[0], 'Storage');
  if (list.length === 0) throw reader.corrupt('<StorageData> lists no <Storage>');
  const storages = list.map((element): DescriptorStorage => {
    const images = new Map<string, DescriptorImage>();
    for (const image of children(element, 'Image')) {
      const guid = reader.guid(image, 'GUID');
      const type = childText(image, 'Type');
      if (type !== 'Compressed' && type !== 'Plain') throw reader.unsupported(`image type "${type ?? ''}" (known: Compressed, Plain)`);
      const file = childText(image, 'File');
      if (file === undefined || file === '') throw reader.corrupt(`image {${guid}} names no <File>`);
      if (images.has(guid)) throw reader.corrupt(`image {${guid}} is listed twice in one storage`);
      images.set(guid, { guid, type, file });
    }
    const blockSectors = reader.integer(element, 'Blocksize');
    if (blockSectors === 0) throw reader.corrupt('<Blocksize> is zero');
    return { startSectors: reader.integer(element, 'Start'), endSectors: reader.integer(element, 'End'), blockSectors, images };
  });
  // Split disks: storages laid end to end, in Start order, from 0 to Disk_size.
  storages.sort((a, b) => a.startSectors - b.startSectors);
  let expected = 0;
  for (const storage of storages) {
    if (storage.startSectors !== expected || storage.endSectors <= storage.startSectors) {
      throw reader.corrupt(`storages do not cover the disk end to end (a storage spans ${storage.startSectors}..${storage.endSectors})`);
    }
    expected = storage.endSectors;
  }
  if (expected !== diskSectors) throw reader.corrupt(`storages end at sector ${expected}, Disk_size is ${diskSectors}`);
  return storages;
}

/** TopGUID; else the predefined top GUID; else the one layer that is nobody's parent. */
function topOf(snapshots: unknown, parents: ReadonlyMap<string, string>): string {
  const text = childText(snapshots, 'TopGUID');
  if (text !== undefined && text !== '') return normalizeGuid(text);
  if (parents.has(TOP_GUID)) return TOP_GUID;
  const parentSet = new Set(parents.values());
  const leaves = [...parents.keys()].filter((guid) => !parentSet.has(guid));
  return leaves.length === 1 ? (leaves[0] as string) : TOP_GUID;
}

function parseChain(reader: DescriptorReader, root: unknown, storages: readonly DescriptorStorage[]): string[] {
  const snapshots = children(root, 'Snapshots')[0];
  const parents = new Map<string, string>();
  for (const shot of children(snapshots, 'Shot')) {
    const guid = reader.guid(shot, 'GUID');
    if (parents.has(guid)) throw reader.corrupt(`snapshot {${guid}} is listed twice`);
    parents.set(guid, reader.guid(shot, 'ParentGUID'));
  }
  const first = storages[0] as DescriptorStorage;
  if (parents.size === 0 && first.images.size === 1) return [...first.images.keys()];
  const chain: string[] = [];
  for (let guid = topOf(snapshots, parents); guid !== ZERO_GUID; ) {
    if (chain.includes(guid)) throw reader.corrupt(`the snapshot chain loops back to {${guid}}`);
    if (chain.length >= MAX_CHAIN_DEPTH) throw reader.unsupported(`snapshot chain deeper than ${MAX_CHAIN_DEPTH} layers`);
    const parent = parents.get(guid);
    if (parent === undefined) throw reader.corrupt(`no <Shot> for snapshot {${guid}}`);
    chain.push(guid);
    guid = parent;
  }
  if (chain.length === 0) throw reader.corrupt('the snapshot chain is empty (the top GUID is the zero GUID)');
  storages.forEach((storage, index) => {
    chain.forEach((guid, depth) => {
      const image = storage.images.get(guid);
      if (image === undefined) throw reader.corrupt(`storage ${index} has no image for snapshot {${guid}}`);
      if (image.type === 'Plain' && depth !== chain.length - 1) throw reader.unsupported(`plain image {${guid}} above the root layer`);
    });
  });
  return chain;
}
