// A full disk is answered NBD_ENOSPC (28), not EIO: qemu's default werror=enospc pauses the guest
// on ENOSPC so space can be freed, and fails the I/O on anything else. Checked through a raw
// client, with a device that throws every shape an ENOSPC can take, and with a real bundle on a
// small full tmpfs.

import test from 'ava';
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import type { WriteOptions } from '../../../lib/block-device.js';
import { SparseBundle } from '../../../lib/engine/sparse-bundle.js';
import { SbmError } from '../../../lib/errors.js';
import * as C from '../../../lib/nbd/constants.js';
import { serveNbd } from '../../../lib/nbd/serve-nbd.js';
import { MemoryDevice } from '../../helpers/memory-device.js';
import { requireTool, tempDir } from '../../helpers/tools.js';
import { request } from './nbd-frames.js';
import { RawClient } from './raw-client.js';

const MIB = 1024 * 1024;

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated, write`), { code, errno: code === 'ENOSPC' ? -28 : -122, syscall: 'write' });
}

/** Each failure the device may raise, by offset (4 KiB apart), and the NBD error it must become. */
const FAILURES: Array<[string, () => unknown, number]> = [
  ['a raw ENOSPC', () => errnoError('ENOSPC'), C.NBD_ENOSPC],
  ['a raw EDQUOT', () => errnoError('EDQUOT'), C.NBD_ENOSPC],
  ['an SbmError carrying errno ENOSPC', () => new SbmError('SBM_IO', 'cannot write band 0: no space', { errno: 'ENOSPC' }), C.NBD_ENOSPC],
  ['SBM_NO_SPACE', () => new SbmError('SBM_NO_SPACE', 'the disk is full'), C.NBD_ENOSPC],
  [
    'an SbmError caused by ENOSPC',
    () => new SbmError('SBM_IO', 'cannot record the change', {}, { cause: errnoError('ENOSPC') }),
    C.NBD_ENOSPC,
  ],
  ['a raw EIO', () => errnoError('EIO'), C.NBD_EIO],
  ['an SbmError carrying errno EIO', () => new SbmError('SBM_IO', 'media error', { errno: 'EIO' }), C.NBD_EIO],
];

class FullDevice extends MemoryDevice {
  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    const failure = FAILURES[offset / 4096];
    if (failure !== undefined) throw failure[1]();
    await super.write(offset, data, options);
  }

  override async writeZeroes(offset: number, length: number): Promise<void> {
    const failure = FAILURES[offset / 4096];
    if (failure !== undefined) throw failure[1]();
    await super.writeZeroes(offset, length);
  }
}

test('WRITE and WRITE_ZEROES that hit ENOSPC or EDQUOT get NBD_ENOSPC; other I/O errors stay EIO', async (t) => {
  const server = await serveNbd(new FullDevice(MIB));
  t.teardown(() => server.close());
  const raw = await RawClient.connect(server);
  t.teardown(() => raw.destroy());
  await raw.handshake();
  for (const [index, [name, , expected]] of FAILURES.entries()) {
    raw.send(request(C.NBD_CMD_WRITE, 0, BigInt(index), index * 4096, 512, Buffer.alloc(512, 1)));
    t.like(await raw.simpleReply(), { cookie: BigInt(index), error: expected }, `WRITE, ${name}`);
    raw.send(request(C.NBD_CMD_WRITE_ZEROES, 0, BigInt(index + 100), index * 4096, 4096));
    t.like(await raw.simpleReply(), { cookie: BigInt(index + 100), error: expected }, `WRITE_ZEROES, ${name}`);
  }
  raw.send(request(C.NBD_CMD_WRITE, 0, 999n, 64 * 4096, 4, Buffer.from('fine')));
  t.like(await raw.simpleReply(), { cookie: 999n, error: 0 }, 'the connection carries on');
});

test('a real bundle on a full tmpfs: NBD writes get ENOSPC, never EIO', async (t) => {
  await requireTool(t, 'mount');
  const dir = await tempDir(t);
  const mountPoint = join(dir, 'small');
  await mkdir(mountPoint);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint]);
  try {
    const bundle = await SparseBundle.create(join(mountPoint, 'vm.sparsebundle'), { sizeBytes: 32 * MIB, bandSizeBytes: MIB });
    try {
      const server = await serveNbd(bundle);
      try {
        const raw = await RawClient.connect(server);
        try {
          await raw.handshake();
          const errors: number[] = [];
          // One band per WRITE until the filesystem is full (3 MiB of tmpfs, 1 MiB bands).
          for (let band = 0; band < 8; band++) {
            raw.send(request(C.NBD_CMD_WRITE, 0, BigInt(band), band * MIB, MIB, Buffer.alloc(MIB, band + 1)));
            errors.push((await raw.simpleReply()).error);
          }
          t.is(errors[0], 0, 'the first band fits');
          const failures = errors.filter((error) => error !== 0);
          t.true(failures.length > 0, `the filesystem filled up: ${errors.join(',')}`);
          t.deepEqual([...new Set(failures)], [C.NBD_ENOSPC], `replies: ${errors.join(',')}`);
        } finally {
          raw.destroy();
        }
      } finally {
        await server.close().catch(() => undefined); // the final flush may itself find no space
      }
    } finally {
      await bundle.close().catch(() => undefined);
    }
  } finally {
    await execa('umount', [mountPoint]);
  }
});
