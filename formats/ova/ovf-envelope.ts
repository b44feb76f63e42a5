// The OVF descriptor, parsed by namespace URI and local name (never by prefix: `<Envelope>`,
// `<ovf:Envelope>` and any other binding read alike), with the safe XML reader. What sbm needs is
// the path from a virtual machine's disk to the bytes that hold it:
//
//   VirtualSystem/VirtualHardwareSection/Item|StorageItem (ResourceType 17)
//     HostResource "ovf:/disk/ID" | "/disk/ID" | "ovf://disk/ID"
//   DiskSection/Disk[@diskId = ID]  capacity x capacityAllocationUnits, populatedSize, format, fileRef
//   References/File[@id = fileRef]  href (a member of the package), size, compression, chunkSize
//
// Disks are numbered in hardware order (controller, then slot), then any disk no item names.

import { SbmError } from '../../lib/errors.js';
import { parseXml } from '../xml/safe-xml.js';
import { MAX_OVF_BYTES, OVF_NAMESPACE_09, OVF_NAMESPACE_1, OVF_NAMESPACE_2, RESOURCE_TYPE_DISK } from './constants.js';
import { isSafeMemberName } from './tar-members.js';

interface XmlAttribute {
  readonly value: string;
  readonly uri: string;
  readonly local: string;
}

interface XmlNode {
  readonly $?: Record<string, XmlAttribute>;
  readonly $ns?: { readonly uri: string; readonly local: string };
  readonly _?: string;
  readonly [child: string]: unknown;
}

export interface OvfFile {
  readonly id: string;
  readonly href: string;
  readonly sizeBytes: number | undefined;
  readonly compression: 'identity' | 'gzip';
  readonly chunkSizeBytes: number | undefined;
}

export interface OvfDisk {
  readonly index: number;
  readonly diskId: string;
  readonly capacityBytes: number;
  readonly populatedSizeBytes: number | undefined;
  readonly format: string | undefined;
  /** Undefined for an empty disk (created when the appliance is deployed). */
  readonly file: OvfFile | undefined;
  readonly system: string | undefined;
}

export interface OvfEnvelope {
  readonly version: string;
  readonly disks: readonly OvfDisk[];
}

const OVF_URIS = [OVF_NAMESPACE_1, OVF_NAMESPACE_2];

/** Child elements with this local name (and, when given, a namespace in `uris`). */
function kids(node: unknown, local: string, uris?: readonly string[]): XmlNode[] {
  if (typeof node !== 'object' || node === null) return [];
  const out: XmlNode[] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === '$' || key === '$ns' || key === '_' || !Array.isArray(value)) continue;
    for (const child of value as unknown[]) {
      const ns = (child as XmlNode | null)?.$ns;
      if (ns !== undefined && ns.local === local && (uris === undefined || uris.includes(ns.uri))) out.push(child as XmlNode);
    }
  }
  return out;
}

/** An OVF attribute by local name: in the OVF namespace or unqualified. */
function attr(node: XmlNode, local: string): string | undefined {
  for (const attribute of Object.values(node.$ ?? {})) {
    if (attribute.local === local && (attribute.uri === '' || OVF_URIS.includes(attribute.uri))) return attribute.value.trim();
  }
  return undefined;
}

function text(node: unknown, local: string): string | undefined {
  const first = kids(node, local)[0];
  return first === undefined ? undefined : (first._ ?? '').trim();
}

class EnvelopeReader {
  constructor(readonly path: string) {}

  corrupt(why: string): SbmError {
    return new SbmError('SBM_CORRUPT', `${this.path}: ${why}`, { path: this.path });
  }

  unsupported(why: string): SbmError {
    return new SbmError('SBM_UNSUPPORTED', `${this.path}: ${why}`, { path: this.path });
  }

  count(value: string | undefined, what: string): number | undefined {
    if (value === undefined) return undefined;
    if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value)))
      throw this.corrupt(`${what} "${value.slice(0, 40)}" is not a byte count`);
    return Number(value);
  }

  /** capacity x capacityAllocationUnits in bytes ("byte", "byte * 2^30", "byte * 1000", "GigaBytes", ...). */
  capacity(disk: XmlNode): number {
    const capacity = attr(disk, 'capacity') ?? '';
    if (capacity.includes('${')) throw this.unsupported(`disk capacity "${capacity}" is a template property, not a size`);
    if (!/^\d{1,20}$/.test(capacity)) throw this.corrupt(`disk capacity "${capacity.slice(0, 40)}" is not a number`);
    const units = (attr(disk, 'capacityAllocationUnits') ?? 'byte').replace(/\s+/g, '');
    const legacy: Record<string, bigint> = { KiloBytes: 1n << 10n, MegaBytes: 1n << 20n, GigaBytes: 1n << 30n };
    let factor = legacy[units];
    const match = /^byte(?:\*(\d{1,4})(?:\^(\d{1,2}))?)?$/i.exec(units);
    if (factor === undefined && match !== null) factor = BigInt(match[1] ?? '1') ** BigInt(match[2] ?? '1');
    if (factor === undefined) throw this.unsupported(`capacity units "${units}" are not understood`);
    const bytes = BigInt(capacity) * factor;
    if (bytes === 0n || bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt(`disk capacity of ${bytes} bytes`);
    return Number(bytes);
  }
}

/** `ovf:/disk/ID`, `/disk/ID`, `ovf://disk/ID` -> ID; anything else (a /file/ reference, an ISO) -> undefined. */
function diskIdOf(hostResource: string): string | undefined {
  const match = /^(?:ovf:)?\/{1,2}disk\/(.+)$/.exec(hostResource.trim());
  return match?.[1];
}

function numberOr(value: string | undefined, fallback: number): number {
  return value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : fallback;
}

/** Disk IDs named by disk items, in hardware order: controller (its InstanceID), then slot. */
function hardwareOrder(systems: readonly XmlNode[]): Array<{ diskId: string; system: string | undefined }> {
  const found: Array<{ diskId: string; system: string | undefined; parent: number; slot: number; seq: number }> = [];
  for (const system of systems) {
    const name = text(system, 'Name') ?? attr(system, 'id');
    for (const section of kids(system, 'VirtualHardwareSection', OVF_URIS)) {
      for (const item of [...kids(section, 'Item', OVF_URIS), ...kids(section, 'StorageItem', OVF_URIS)]) {
        if (text(item, 'ResourceType') !== RESOURCE_TYPE_DISK) continue;
        const diskId = diskIdOf(text(item, 'HostResource') ?? '');
        if (diskId === undefined || found.some((entry) => entry.diskId === diskId)) continue;
        const parent = numberOr(text(item, 'Parent'), Number.MAX_SAFE_INTEGER);
        found.push({ diskId, system: name, parent, slot: numberOr(text(item, 'AddressOnParent'), 0), seq: found.length });
      }
    }
  }
  found.sort((a, b) => a.parent - b.parent || a.slot - b.slot || a.seq - b.seq);
  return found.map(({ diskId, system }) => ({ diskId, system }));
}

function parseFile(reader: EnvelopeReader, node: XmlNode): OvfFile {
  const id = attr(node, 'id') ?? '';
  const href = attr(node, 'href') ?? '';
  if (/^[a-z][a-z0-9+.-]*:/i.test(href))
    throw reader.unsupported(`file "${id}" is a URL (${href.slice(0, 80)}); sbm reads packaged files only`);
  if (!isSafeMemberName(href)) {
    throw new SbmError('SBM_PATH_OUTSIDE', `${reader.path}: file "${id}" names "${href}", outside the package`, {
      path: reader.path,
      href,
    });
  }
  const compression = attr(node, 'compression') ?? 'identity';
  if (compression !== 'identity' && compression !== 'gzip') throw reader.unsupported(`file "${href}" uses compression "${compression}"`);
  const chunkSizeBytes = reader.count(attr(node, 'chunkSize'), 'chunkSize');
  if (chunkSizeBytes === 0) throw reader.corrupt(`file "${href}" has a chunkSize of 0`);
  return { id, href, sizeBytes: reader.count(attr(node, 'size'), 'file size'), compression, chunkSizeBytes };
}

export async function parseOvfEnvelope(bytes: Buffer, path: string): Promise<OvfEnvelope> {
  const reader = new EnvelopeReader(path);
  const document = await parseXml(bytes, { what: 'OVF descriptor', path, maxBytes: MAX_OVF_BYTES, namespaces: true });
  const root = Object.values(document)[0] as XmlNode | undefined;
  const ns = root?.$ns;
  if (root === undefined || ns === undefined || ns.local !== 'Envelope') throw reader.corrupt('the root element is not an OVF <Envelope>');
  if (ns.uri === OVF_NAMESPACE_09) throw reader.unsupported('OVF 0.9 descriptors (VMware pre-standard) are not read');
  if (!OVF_URIS.includes(ns.uri)) throw reader.corrupt(`the Envelope's namespace "${ns.uri.slice(0, 80)}" is not OVF 1.x or 2.x`);
  const files = new Map<string, OvfFile>();
  for (const node of kids(kids(root, 'References', OVF_URIS)[0], 'File', OVF_URIS)) {
    const file = parseFile(reader, node);
    if (files.has(file.id)) throw reader.corrupt(`file id "${file.id}" is listed twice`);
    files.set(file.id, file);
  }
  const diskNodes = new Map<string, XmlNode>();
  for (const section of kids(root, 'DiskSection', OVF_URIS)) {
    for (const node of kids(section, 'Disk', OVF_URIS)) {
      const diskId = attr(node, 'diskId') ?? '';
      if (diskId === '' || diskNodes.has(diskId)) throw reader.corrupt(`disk id "${diskId}" is missing or listed twice`);
      diskNodes.set(diskId, node);
    }
  }
  const systems = [...kids(root, 'VirtualSystem', OVF_URIS)];
  for (const collection of kids(root, 'VirtualSystemCollection', OVF_URIS)) systems.push(...kids(collection, 'VirtualSystem', OVF_URIS));
  const order = hardwareOrder(systems);
  for (const diskId of diskNodes.keys()) if (!order.some((entry) => entry.diskId === diskId)) order.push({ diskId, system: undefined });
  const disks = order.map(({ diskId, system }, index): OvfDisk => {
    const node = diskNodes.get(diskId);
    if (node === undefined) throw reader.corrupt(`a hardware item names disk "${diskId}", which DiskSection does not list`);
    if (attr(node, 'parentRef') !== undefined) throw reader.unsupported(`disk "${diskId}" is a delta of another disk (parentRef)`);
    const fileRef = attr(node, 'fileRef');
    const file = fileRef === undefined ? undefined : files.get(fileRef);
    if (fileRef !== undefined && file === undefined)
      throw reader.corrupt(`disk "${diskId}" names file "${fileRef}", which References does not list`);
    return {
      index,
      diskId,
      capacityBytes: reader.capacity(node),
      populatedSizeBytes: reader.count(attr(node, 'populatedSize'), 'populatedSize'),
      format: attr(node, 'format'),
      file,
      system,
    };
  });
  return { version: attr(root, 'version') ?? (ns.uri === OVF_NAMESPACE_2 ? '2.0' : '1.0'), disks };
}
