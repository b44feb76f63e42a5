// Detection by content, without the CLI: the signature table finds each magic only where its
// format puts it (start of file, or trailer at the end), random bytes without a signature stay
// raw, and a file too short for a signature is raw.

import test from 'ava';
import fc from 'fast-check';
import { detectContent } from '../../formats/detect/detect-content.js';
import { isOva } from '../../formats/detect/ova-signature.js';
import { SIGNATURES, type Signature } from '../../formats/detect/signatures.js';
import type { ProbeInput } from '../../formats/image-format.js';

const PROBE_HEAD = 64 * 1024;
const PROBE_TAIL = 1024;

/** What probeImage reads from a file holding `bytes`. */
function probeOf(bytes: Buffer): ProbeInput {
  return {
    path: 'sample.img',
    isDirectory: false,
    head: bytes.subarray(0, PROBE_HEAD),
    tail: bytes.subarray(Math.max(0, bytes.length - PROBE_TAIL)),
    sizeBytes: bytes.length,
  };
}

function magicOf(signature: Signature): Buffer {
  return Buffer.from(signature.layout.fields[0].equals, 'latin1');
}

function plant(bytes: Buffer, signature: Signature): Buffer {
  const out = Buffer.from(bytes);
  magicOf(signature).copy(out, signature.at >= 0 ? signature.at : out.length + signature.at);
  return out;
}

function expected(signature: Signature, bytes: Buffer): string {
  return (signature.refine?.(bytes) ?? signature).name;
}

test('each signature is found at its place, with the qcow and LUKS versions named', (t) => {
  for (const signature of SIGNATURES) {
    const bytes = plant(Buffer.alloc(8 * 1024), signature);
    const found = detectContent(probeOf(bytes));
    t.is(found?.name, expected(signature, bytes), signature.label);
  }
  const qcow = (version: number) => {
    const bytes = Buffer.alloc(4096);
    bytes.write('QFI\xfb', 0, 'latin1');
    bytes.writeUInt32BE(version, 4);
    return detectContent(probeOf(bytes));
  };
  t.deepEqual(qcow(1), { name: 'qcow', label: 'qcow (version 1)' });
  t.deepEqual(qcow(2), { name: 'qcow2', label: 'qcow2 (version 2, compat=0.10)' });
  t.deepEqual(qcow(3), { name: 'qcow2', label: 'qcow2 (version 3, compat=1.1)' });
  const luks2 = Buffer.alloc(4096);
  luks2.write('LUKS\xba\xbe\x00\x02', 0, 'latin1');
  t.deepEqual(detectContent(probeOf(luks2)), { name: 'luks', label: 'LUKS2' });
});

test('a fixed VHD has only its footer: found in the last 512 bytes of a large file, past the 64 KiB head', (t) => {
  const bytes = Buffer.alloc(PROBE_HEAD * 4, 0x5a);
  bytes.write('conectix', bytes.length - 512, 'latin1');
  t.deepEqual(detectContent(probeOf(bytes)), { name: 'vhd', label: 'VHD' });
  const virtualPc = Buffer.alloc(PROBE_HEAD * 4, 0x5a);
  virtualPc.write('conectix', virtualPc.length - 511, 'latin1');
  t.deepEqual(detectContent(probeOf(virtualPc)), { name: 'vhd', label: 'VHD (Virtual PC 511-byte footer)' });
});

test('a magic at the start wins over a trailer (a qcow2 whose last sector holds a VHD footer is qcow2)', (t) => {
  const bytes = Buffer.alloc(8192);
  bytes.write('QFI\xfb\0\0\0\x03', 0, 'latin1');
  bytes.write('conectix', bytes.length - 512, 'latin1');
  t.is(detectContent(probeOf(bytes))?.name, 'qcow2');
});

test('a file too short to hold a signature is raw', (t) => {
  for (const text of ['', 'Q', 'QFI', 'vhdxfil', 'WithoutFreeSpac', 'conecti']) {
    t.is(detectContent(probeOf(Buffer.from(text, 'latin1'))), undefined, JSON.stringify(text));
  }
  // VDI's signature sits at 0x40: a 0x43-byte file cannot hold it.
  const vdiShort = Buffer.alloc(0x43);
  Buffer.from([0x7f, 0x10, 0xda]).copy(vdiShort, 0x40);
  t.is(detectContent(probeOf(vdiShort)), undefined);
});

test('property: random bytes without signatures stay raw', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 8192 }), (array) => {
      return detectContent(probeOf(Buffer.from(array))) === undefined;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: a magic planted at its place is found; the same magic anywhere else is not', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4096, maxLength: 16384 }),
      fc.integer({ min: 0, max: SIGNATURES.length - 1 }),
      fc.integer({ min: 1, max: 2000 }),
      (array, index, shift) => {
        const signature = SIGNATURES[index] as Signature;
        const bytes = Buffer.from(array);
        const planted = plant(bytes, signature);
        if (detectContent(probeOf(planted))?.name !== expected(signature, planted)) return false;
        // Elsewhere: past the header area, well before the trailer area.
        const elsewhere = Buffer.from(bytes);
        magicOf(signature).copy(elsewhere, 0x100 + shift);
        return detectContent(probeOf(elsewhere)) === undefined;
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

test('an OVA needs a valid tar header checksum and an .ovf as its first member', (t) => {
  const header = Buffer.alloc(1024);
  header.write('appliance.ovf', 0, 'latin1');
  header.write('0000644\0', 100, 'latin1');
  header.write('00000000000\0', 124, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\x0000', 257, 'latin1');
  const withChecksum = (bytes: Buffer): Buffer => {
    const out = Buffer.from(bytes);
    out.fill(0x20, 148, 156);
    let sum = 0;
    for (let index = 0; index < 512; index++) sum += out[index] ?? 0;
    out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return out;
  };
  t.true(isOva(withChecksum(header)));
  const damaged = withChecksum(header);
  damaged[0] = 0x41;
  t.false(isOva(damaged), 'checksum mismatch');
  const vmdkFirst = Buffer.from(header);
  vmdkFirst.write('disk1.vmdk\0\0\0', 0, 'latin1');
  t.false(isOva(withChecksum(vmdkFirst)), 'first member is not the .ovf');
});
