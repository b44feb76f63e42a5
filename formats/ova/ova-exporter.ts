// `sbm export <bundle> vm.ova`: an OVF 1.0 package as VMware and VirtualBox import it. The disk is
// written first as a streamOptimized VMDK beside the output (its size must be in the tar header
// before its bytes), then the tar is written in the order the standard requires: the descriptor,
// the disk, the SHA256 manifest of both. The staging VMDK is removed whatever happens.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { Builder } from 'xml2js';
import type { BlockDevice } from '../../lib/block-device.js';
import { SbmError, fromSystemError } from '../../lib/errors.js';
import type { ExportOptions, ImageExporter } from '../image-format.js';
import type { GrainWalkStats } from '../vmdk/grain-source.js';
import { writeStreamOptimized } from '../vmdk/stream-writer.js';
import { finalFileName } from '../vmdk/vmdk-exporter.js';
import { OVF_NAMESPACE_1, RASD_NAMESPACE, STREAM_OPTIMIZED_URI, VSSD_NAMESPACE } from './constants.js';
import { formatManifestLine } from './manifest.js';

export const ovaExporter: ImageExporter = {
  name: 'ova',
  async export(source, outPath, options) {
    const started = process.hrtime.bigint();
    const stem = finalFileName(outPath).replace(/\.ova$/i, '') || 'disk';
    const diskName = `${stem}-disk1.vmdk`;
    const staging = `${outPath}.disk1.vmdk`;
    try {
      const stats = await writeDisk(source, staging, diskName, options);
      const vmdkBytes = (await stat(staging)).size;
      const ovfName = `${stem}.ovf`;
      const ovf = Buffer.from(envelope(stem, diskName, vmdkBytes, source.sizeBytes, stats.bytesRead));
      const manifest =
        formatManifestLine(ovfName, 'sha256', createHash('sha256').update(ovf).digest('hex')) +
        formatManifestLine(diskName, 'sha256', await fileDigest(staging));
      const bytesWritten = await writeTar(outPath, [
        { name: ovfName, data: ovf },
        { name: diskName, path: staging, size: vmdkBytes },
        { name: `${stem}.mf`, data: Buffer.from(manifest) },
      ]);
      return { bytesRead: stats.bytesRead, bytesWritten, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
    } finally {
      await unlink(staging).catch(() => undefined); // only ever ours: a staging name beside the output
    }
  },
};

async function writeDisk(source: BlockDevice, path: string, diskName: string, options: ExportOptions): Promise<GrainWalkStats> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx', 0o644);
  } catch (error) {
    throw fromSystemError(error, 'cannot create the package disk', path);
  }
  const stats: GrainWalkStats = { bytesRead: 0, bytesDone: 0 };
  try {
    await writeStreamOptimized(source, handle, path, diskName, options.copy, stats);
  } finally {
    await handle.close();
  }
  return stats;
}

/** The OVF 1.0 descriptor: one virtual system with one disk on an IDE controller. */
function envelope(name: string, diskName: string, fileBytes: number, capacity: number, populated: number): string {
  const ovf = (attributes: Record<string, string | number>) =>
    Object.fromEntries(Object.entries(attributes).map(([key, value]) => [`ovf:${key}`, String(value)]));
  const item = (fields: Record<string, string>) => Object.fromEntries(Object.entries(fields).map(([key, value]) => [`rasd:${key}`, value]));
  const document = {
    Envelope: {
      $: {
        xmlns: OVF_NAMESPACE_1,
        'xmlns:ovf': OVF_NAMESPACE_1,
        'xmlns:rasd': RASD_NAMESPACE,
        'xmlns:vssd': VSSD_NAMESPACE,
        'ovf:version': '1.0',
      },
      References: { File: { $: ovf({ id: 'file1', href: diskName, size: fileBytes }) } },
      DiskSection: {
        Info: 'Virtual disk information',
        Disk: {
          $: ovf({ diskId: 'vmdisk1', fileRef: 'file1', capacity, populatedSize: populated, format: STREAM_OPTIMIZED_URI }),
        },
      },
      VirtualSystem: {
        $: ovf({ id: name }),
        Info: 'A virtual machine exported by sbm',
        Name: name,
        VirtualHardwareSection: {
          Info: 'Virtual hardware requirements',
          Item: [
            item({ Address: '0', ElementName: 'IDE Controller 0', InstanceID: '3', ResourceType: '5' }),
            item({
              AddressOnParent: '0',
              ElementName: 'Hard Disk 1',
              HostResource: 'ovf:/disk/vmdisk1',
              InstanceID: '4',
              Parent: '3',
              ResourceType: '17',
            }),
          ],
        },
      },
    },
  };
  return new Builder({ xmldec: { version: '1.0', encoding: 'UTF-8' } }).buildObject(document);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

type Member = { readonly name: string; readonly data: Buffer } | { readonly name: string; readonly path: string; readonly size: number };

/** A ustar archive of `members` in order, written to `outPath` (created, never replaced) and synced. */
async function writeTar(outPath: string, members: readonly Member[]): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(outPath, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new SbmError('SBM_EXISTS', `${outPath} already exists`, { path: outPath });
    throw fromSystemError(error, 'cannot create OVA', outPath);
  }
  try {
    const archive = pack();
    // The stream owns the handle from here: it fsyncs it (flush) and closes it once all is written.
    const writing = pipeline(archive, handle.createWriteStream({ flush: true }));
    for (const member of members) {
      const header = { name: basename(member.name), mode: 0o644, mtime: new Date(), uname: 'someone', gname: 'someone' };
      if ('data' in member) {
        archive.entry({ ...header, size: member.data.length }, member.data);
      } else {
        await new Promise<void>((resolve, reject) => {
          const entry = archive.entry({ ...header, size: member.size }, (error) => (error ? reject(error) : resolve()));
          const input = createReadStream(member.path, { highWaterMark: 1024 * 1024 });
          input.on('error', reject);
          input.pipe(entry);
        });
      }
    }
    archive.finalize();
    await writing;
    return (await stat(outPath)).size;
  } catch (error) {
    await handle.close().catch(() => undefined); // closed already unless the stream failed early
    await unlink(outPath).catch(() => undefined); // ours: leave nothing half-written
    throw fromSystemError(error, 'cannot write OVA', outPath);
  }
}
