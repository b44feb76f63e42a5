// Opens one disk of an OVF package (an .ova tar, an .ovf file or the folder holding it) as a
// read-only device: the descriptor says which package file holds the disk, the manifest's digest
// of that file is checked before any of its bytes are trusted, and the VMDK is then read in place
// (a window of the tar, or the chunk members in order), never extracted.

import { open } from 'node:fs/promises';
import type { Extent, WriteOptions } from '../../lib/block-device.js';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import type { ImageReader, OpenImageOptions } from '../image-format.js';
import { openEmbeddedVmdk } from '../vmdk/open-vmdk.js';
import type { VmdkImage } from '../vmdk/vmdk-image.js';
import { MAX_MANIFEST_BYTES, MAX_OVF_BYTES } from './constants.js';
import { type ManifestEntry, manifestMismatch, parseManifest } from './manifest.js';
import { type OvfPackage, type PackageFile, digestOf, openFolderPackage, openOvaPackage, readPackageFile } from './ova-package.js';
import { type OvfDisk, type OvfFile, parseOvfEnvelope } from './ovf-envelope.js';
import { gunzippedHead, stageGunzipped } from './gzip-staging.js';
import { GzipStreamDisk } from './gzip-stream-disk.js';
import { SECTOR_SIZE, SPARSE_MAGICNUMBER } from '../vmdk/constants.js';
import { decodeSparseHeader } from '../vmdk/sparse-header.js';
import { type StreamGeometry, streamGeometry } from '../vmdk/stream-copy.js';
import { SegmentedHandle } from './segmented-handle.js';

/** `kind`: an .ova file, or an unpacked package (a folder, or its .ovf named directly). */
export async function openOvf(path: string, kind: 'ova' | 'ovf', options: OpenImageOptions): Promise<ImageReader> {
  const pack = kind === 'ova' ? await openOvaPackage(path) : await openUnpacked(path);
  const envelope = await parseOvfEnvelope(await readPackageFile(pack.ovf, MAX_OVF_BYTES, 'the descriptor'), path);
  const disk = pickDisk(path, envelope.disks, options.disk);
  const file = disk.file;
  if (file === undefined) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: disk ${disk.index} (${disk.diskId}) has no file: it is created empty on import`, {
      path,
    });
  }
  const pieces = await diskPieces(pack, file);
  const manifest = await readManifest(pack);
  const checked = await checkDigests(pack, manifest, pieces); // of the stored (compressed) bytes
  const facts = (compression?: string): Record<string, unknown> => ({
    package: kind === 'ova' ? 'OVA' : 'OVF folder',
    ovfVersion: envelope.version,
    disk: disk.index,
    disks: envelope.disks.map((each) => ({
      index: each.index,
      id: each.diskId,
      capacity: each.capacityBytes,
      ...(each.file === undefined ? {} : { file: each.file.href }),
      ...(each.system === undefined ? {} : { system: each.system }),
    })),
    file: file.href,
    ...(compression === undefined ? {} : { compression }),
    manifest: checked,
  });
  const warnCapacity = (vmdkBytes: number) => {
    if (vmdkBytes === disk.capacityBytes) return;
    const given = `disk ${disk.index} ${disk.capacityBytes} bytes`;
    options.onWarning?.({
      code: 'SBM_OVF_CAPACITY',
      message: `${path}: the descriptor gives ${given}, its VMDK holds ${vmdkBytes}; the VMDK is read`,
    });
  };
  if (file.compression === 'gzip') {
    // A streamOptimized VMDK is converted straight from the package; random access stages it.
    const geometry = await gzipStreamGeometry(pieces, path, file.href);
    if (geometry !== undefined) {
      warnCapacity(geometry.capacityBytes);
      const limitBytes = gunzipLimit(Math.max(disk.capacityBytes, geometry.capacityBytes));
      const source = { where: path, name: file.href, pieces, geometry, limitBytes, facts: facts('gzip') };
      return new GzipStreamDisk(kind, source, () => openDiskVmdk(path, pieces, file.href, true, limitBytes, options, facts, kind));
    }
  }
  const reader = await openDiskVmdk(
    path,
    pieces,
    file.href,
    file.compression === 'gzip',
    gunzipLimit(disk.capacityBytes),
    options,
    facts,
    kind,
  );
  warnCapacity(reader.sizeBytes);
  return reader;
}

/** The geometry of the streamOptimized VMDK a gzip file holds, or undefined when it holds something else. */
async function gzipStreamGeometry(pieces: readonly PackageFile[], path: string, name: string): Promise<StreamGeometry | undefined> {
  const head = await gunzippedHead(pieces, SECTOR_SIZE, path, name);
  if (head.length < SECTOR_SIZE) return undefined;
  const header = decodeSparseHeader(head, 0, path);
  return header.magicNumber === SPARSE_MAGICNUMBER ? streamGeometry(header, `${path}: ${name}`) : undefined;
}

/** The VMDK of the disk read in place, or from a decompressed temporary copy when the file is gzip-compressed. */
async function openDiskVmdk(
  path: string,
  pieces: readonly PackageFile[],
  href: string,
  gzip: boolean,
  limitBytes: number,
  options: OpenImageOptions,
  facts: (compression?: string) => Record<string, unknown>,
  kind: 'ova' | 'ovf',
): Promise<OvfDiskReader> {
  const staged = gzip ? await stageGunzipped(pieces, limitBytes, path, href) : undefined;
  const handle =
    staged?.handle ??
    (await open(pieces[0]?.path ?? path, 'r').catch((error: unknown) => {
      throw fromSystemError(error, 'cannot open', path);
    }));
  const segments =
    staged === undefined
      ? pieces.map((piece) => ({ fileOffset: piece.offset, length: piece.sizeBytes }))
      : [{ fileOffset: 0, length: staged.sizeBytes }];
  // The VMDK reader's inflate workers reopen the file by name: the unlinked copy's name is its descriptor's.
  const name = staged === undefined ? (pieces[0]?.path ?? path) : `/dev/fd/${staged.handle.fd}`;
  const vmdk = await openEmbeddedVmdk(new SegmentedHandle(handle, segments), name, options).catch(async (error: unknown) => {
    await handle.close().catch(() => undefined);
    throw error;
  });
  const compression = staged === undefined ? undefined : `gzip (${staged.sizeBytes} bytes decompressed to an unlinked temporary file)`;
  return new OvfDiskReader(vmdk, facts(compression), kind);
}

/**
 * The most a gzip-compressed disk file may decompress to: a VMDK of the disk's capacity with every
 * grain allocated, its grain tables and headers (well under 1/16 of the capacity), and some slack.
 */
function gunzipLimit(capacityBytes: number): number {
  return capacityBytes + Math.ceil(capacityBytes / 16) + 64 * 1024 * 1024;
}

async function openUnpacked(path: string): Promise<OvfPackage> {
  return /\.ovf$/i.test(path) ? openFolderPackage(path, path) : openFolderPackage(path);
}

function pickDisk(path: string, disks: readonly OvfDisk[], wanted: number | undefined): OvfDisk {
  if (disks.length === 0) throw new SbmError('SBM_CORRUPT', `${path}: the descriptor lists no disk`, { path });
  const index = wanted ?? 0;
  const disk = disks[index];
  if (disk === undefined) {
    throw new SbmError(
      'SBM_USAGE',
      `--disk ${index}: ${path} has ${disks.length} disk${disks.length === 1 ? '' : 's'} (0 to ${disks.length - 1})`,
      {
        path,
      },
    );
  }
  return disk;
}

/** The package files holding the disk: the file itself, or its chunks NAME.000000000, NAME.000000001, ... */
async function diskPieces(pack: OvfPackage, file: OvfFile): Promise<PackageFile[]> {
  const missing = (name: string) => new SbmError('SBM_NOT_FOUND', `${pack.path}: ${name} is not in the package`, { path: pack.path, name });
  if (file.chunkSizeBytes === undefined) {
    const whole = await pack.find(file.href);
    if (whole === undefined) throw missing(file.href);
    return [whole];
  }
  const pieces: PackageFile[] = [];
  for (let index = 0; ; index++) {
    const piece = await pack.find(`${file.href}.${String(index).padStart(9, '0')}`);
    if (piece === undefined) break;
    pieces.push(piece);
  }
  if (pieces.length === 0) throw missing(`${file.href}.000000000`);
  if (new Set(pieces.map((piece) => piece.path)).size > 1) {
    throw new SbmError('SBM_UNSUPPORTED', `${pack.path}: the chunks of ${file.href} are separate files; sbm reads chunks inside an OVA`, {
      path: pack.path,
    });
  }
  return pieces;
}

async function readManifest(pack: OvfPackage): Promise<Map<string, ManifestEntry> | undefined> {
  const name = pack.ovf.name.replace(/\.ovf$/i, '.mf');
  const file = (await pack.find(name)) ?? (await pack.find(name.replace(/\.mf$/, '.MF')));
  if (file === undefined) return undefined;
  return parseManifest((await readPackageFile(file, MAX_MANIFEST_BYTES, 'the manifest')).toString('utf8'), pack.path);
}

/**
 * Checks the digests the manifest gives for the descriptor and each piece of the disk (every piece
 * must be listed when there is a manifest); returns what was checked, for `sbm info`.
 */
async function checkDigests(pack: OvfPackage, manifest: Map<string, ManifestEntry> | undefined, pieces: PackageFile[]): Promise<string> {
  if (manifest === undefined) return 'none (the disk bytes are read unchecked)';
  const algorithms = new Set<string>();
  for (const file of [pack.ovf, ...pieces]) {
    const entry = manifest.get(file.name);
    if (entry === undefined) {
      throw new SbmError('SBM_CORRUPT', `${pack.path}: the manifest does not list ${file.name}; its bytes cannot be trusted`, {
        path: pack.path,
        name: file.name,
      });
    }
    const actual = await digestOf([file], entry.algorithm);
    if (actual !== entry.digest) throw manifestMismatch(pack.path, file.name, entry, actual);
    algorithms.add(entry.algorithm.toUpperCase());
  }
  return `${[...algorithms].join(', ')} of the descriptor and the disk checked`;
}

/** The VMDK inside the package, described as the package disk it is. */
class OvfDiskReader implements ImageReader {
  readonly formatName: string;
  readonly readOnly = true;
  readonly sizeBytes: number;
  readonly preferredBlockSize: number;
  readonly minimumBlockSize: number;

  constructor(
    private readonly vmdk: VmdkImage,
    private readonly facts: Record<string, unknown>,
    kind: 'ova' | 'ovf',
  ) {
    this.formatName = kind;
    this.sizeBytes = vmdk.sizeBytes;
    this.preferredBlockSize = vmdk.preferredBlockSize;
    this.minimumBlockSize = vmdk.minimumBlockSize;
  }

  async details(): Promise<Record<string, unknown>> {
    const vmdk = await this.vmdk.details();
    return { ...this.facts, createType: vmdk.createType, allocatedBytes: vmdk.allocatedBytes };
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.vmdk.read(offset, length);
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.vmdk.readInto(offset, target);
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.vmdk.extents(offset, length);
  }

  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.vmdk.write(offset, data, options);
  }

  // Read-only: the VMDK refuses, with its own error.
  writeZeroes(): Promise<void> {
    return this.vmdk.writeZeroes();
  }

  trim(): Promise<void> {
    return this.vmdk.trim();
  }

  flush(): Promise<void> {
    return this.vmdk.flush();
  }

  close(): Promise<void> {
    return this.vmdk.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
