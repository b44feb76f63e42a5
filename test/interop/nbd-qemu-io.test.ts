// qemu-io against sbm's NBD server: many asynchronous writes of distinct patterns (aligned,
// unaligned, across band edges, FUA), zeroing and discard, then reads that verify every pattern.
// The bundle is then reopened directly to check the bytes landed where qemu-io put them.

import test from 'ava';
import { execa } from 'execa';

import { SparseBundle } from '../../lib/engine/sparse-bundle.js';
import { requireTool } from '../helpers/tools.js';
import { MIB, serveBundle } from '../lib/nbd/interop-kit.js';

const BAND = 1 * MIB;
const SIZE = 16 * MIB;

interface Piece {
  offset: number;
  length: number;
  pattern: number;
}

/** 48 writes, one per 320 KiB slot: 4 KiB aligned, odd sizes at odd offsets, runs across band edges. */
function pieces(): Piece[] {
  const slot = 320 * 1024;
  const out: Piece[] = [];
  for (let index = 0; index < 48; index++) {
    const start = index * slot;
    const edge = Math.ceil((start + 2048) / BAND) * BAND;
    const pattern = 1 + index;
    if (edge + 6144 <= start + slot) out.push({ offset: edge - 2048, length: 8192, pattern });
    else if (index % 2 === 0) out.push({ offset: start, length: 4096, pattern });
    else out.push({ offset: start + 1000 + index, length: 3000 + index * 7, pattern });
  }
  return out.filter((piece) => piece.offset + piece.length <= SIZE);
}

test('qemu-io: many aio writes then pattern-verified reads, zeroes, discard, FUA', async (t) => {
  await requireTool(t, 'qemu-io');
  const served = await serveBundle(t, SIZE, { bandSizeBytes: BAND });
  const list = pieces();
  // Non-overlapping by construction; check so a change to pieces() cannot make the test lie.
  const sorted = [...list].sort((a, b) => a.offset - b.offset);
  for (let index = 1; index < sorted.length; index++) {
    const previous = sorted[index - 1] as Piece;
    t.true(previous.offset + previous.length <= (sorted[index] as Piece).offset, 'pieces overlap');
  }
  const writes = list.flatMap((piece, index) => [
    '-c',
    `aio_write ${index % 4 === 0 ? '-f ' : ''}-P ${piece.pattern} ${piece.offset} ${piece.length}`,
  ]);
  const reads = list.flatMap((piece) => ['-c', `aio_read -P ${piece.pattern} ${piece.offset} ${piece.length}`]);
  const result = await execa(
    'qemu-io',
    ['-f', 'raw', '-t', 'writeback', ...writes, '-c', 'aio_flush', ...reads, '-c', 'aio_flush', served.server.uri],
    { reject: false },
  );
  t.is(result.exitCode, 0, result.stderr);
  t.notRegex(result.stdout + result.stderr, /fail|error|mismatch/i);
  t.is((result.stdout.match(/^wrote /gm) ?? []).length, list.length);
  t.is((result.stdout.match(/^read /gm) ?? []).length, list.length);

  // Zeroes (allocated and unmapped), discard of a whole band, FUA write, reads at EOF.
  const more = await execa(
    'qemu-io',
    [
      '-f',
      'raw',
      '-c',
      `write -z ${list[0]?.offset} 4096`,
      '-c',
      `read -P 0 ${list[0]?.offset} 4096`,
      '-c',
      `write -z -u ${2 * BAND} ${BAND}`,
      '-c',
      `read -P 0 ${2 * BAND} ${BAND}`,
      '-c',
      `discard ${4 * BAND} ${BAND}`,
      '-c',
      `read -P 0 ${4 * BAND} ${BAND}`,
      '-c',
      `write -f -P 0xab ${SIZE - 512} 512`,
      '-c',
      `read -P 0xab ${SIZE - 512} 512`,
      '-c',
      'flush',
      served.server.uri,
    ],
    { reject: false },
  );
  t.is(more.exitCode, 0, more.stderr);
  t.notRegex(more.stdout + more.stderr, /fail|error|mismatch/i);
  const beyond = await execa('qemu-io', ['-f', 'raw', '-c', `read ${SIZE - 256} 512`, served.server.uri], { reject: false });
  t.regex(beyond.stdout + beyond.stderr, /error|Input\/output|Invalid|out of range/i, 'a read past the end is refused');

  await served.stop();
  const bundle = await SparseBundle.open(served.bundlePath, { readOnly: true });
  try {
    for (const piece of list.slice(1)) {
      if (piece.offset >= 2 * BAND && piece.offset + piece.length <= 3 * BAND) continue;
      if (piece.offset >= 4 * BAND && piece.offset + piece.length <= 5 * BAND) continue;
      const inZeroed = (start: number) => piece.offset < start + BAND && piece.offset + piece.length > start;
      if (inZeroed(2 * BAND) || inZeroed(4 * BAND)) continue;
      const bytes = await bundle.read(piece.offset, piece.length);
      t.true(
        bytes.every((byte) => byte === piece.pattern),
        `pattern ${piece.pattern} at ${piece.offset}`,
      );
    }
    t.false(bundle.bandsPresent().includes(4), 'the discarded band was deleted');
    t.true((await bundle.read(SIZE - 512, 512)).every((byte) => byte === 0xab));
  } finally {
    await bundle.close();
  }
});
