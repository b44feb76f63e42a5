// A disk file an OVF package stores gzip-compressed (ovf:compression="gzip"). gzip offers no random
// access. `sbm convert` reads a streamOptimized VMDK in it front to back in one pass
// (gunzipPieces + vmdk/stream-copy.ts): nothing is staged. Commands that need random access
// (info, mount, compare, sync) decompress it once, in order, into a temporary file that is
// unlinked as soon as it is open (stageGunzipped): the VMDK reader then reads it in place, and
// nothing is left behind however the command ends. Either way the output is bounded (a gzip bomb
// fails instead of filling the disk or running for hours), and a damaged stream (gzip's own
// CRC-32 and length check it) is SBM_CORRUPT.

import { createReadStream } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Readable, pipeline as pipelineCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { SbmError, fromSystemError, isSbmError } from '../../lib/errors.js';
import type { PackageFile } from './ova-package.js';

/** The compressed bytes of the pieces, in order (one gzip stream split over chunk members). */
async function* compressedBytes(pieces: readonly PackageFile[]): AsyncGenerator<Buffer> {
  for (const piece of pieces) {
    if (piece.sizeBytes > 0) yield* createReadStream(piece.path, { start: piece.offset, end: piece.offset + piece.sizeBytes - 1 });
  }
}

/** The decompressed stream of the pieces; destroy it to stop early. Its errors go through gzipFailure. */
export function gunzipPieces(pieces: readonly PackageFile[]): Readable {
  return pipelineCallback(compressedBytes(pieces), createGunzip(), () => undefined);
}

/** The first `count` decompressed bytes (fewer when the stream is shorter). */
export async function gunzippedHead(pieces: readonly PackageFile[], count: number, where: string, name: string): Promise<Buffer> {
  const stream = gunzipPieces(pieces);
  const parts: Buffer[] = [];
  let have = 0;
  try {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      have += (chunk as Buffer).length;
      if (have >= count) break;
    }
  } catch (error) {
    throw gzipFailure(error, where, name);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts).subarray(0, count);
}

/** A failure while decompressing, as the error the user sees: a damaged stream is SBM_CORRUPT. */
export function gzipFailure(error: unknown, where: string, name: string): unknown {
  if (isSbmError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code.startsWith('Z_') || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new SbmError('SBM_CORRUPT', `${where}: ${name} does not decompress as gzip: ${(error as Error).message}`, { path: where });
  }
  return fromSystemError(error, 'cannot decompress', name);
}

export interface StagedDisk {
  readonly handle: FileHandle;
  readonly sizeBytes: number;
}

/** Decompresses the pieces (in order, one gzip stream) into an unlinked temporary file of at most `limitBytes`. */
export async function stageGunzipped(pieces: readonly PackageFile[], limitBytes: number, where: string, name: string): Promise<StagedDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'sbm-ova-')).catch((error: unknown) => {
    throw fromSystemError(error, 'cannot make a temporary folder for', name);
  });
  let handle: FileHandle | undefined;
  try {
    handle = await open(join(dir, 'disk'), 'w+');
    await rm(dir, { recursive: true, force: true }); // unlinked now; the open handle keeps the data
    const target = handle;
    let sizeBytes = 0;
    await pipeline(compressedBytes(pieces), createGunzip(), async (output: AsyncIterable<Buffer>) => {
      for await (const chunk of output) {
        if (sizeBytes + chunk.length > limitBytes) {
          throw new SbmError(
            'SBM_CORRUPT',
            `${where}: ${name} decompresses to more than ${limitBytes} bytes, more than its disk can hold`,
            {
              path: where,
            },
          );
        }
        await target.write(chunk, 0, chunk.length, sizeBytes);
        sizeBytes += chunk.length;
      }
    });
    return { handle: target, sizeBytes };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw gzipFailure(error, where, name);
  }
}
