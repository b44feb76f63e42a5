// Finding, checking and sizing the VHD footer.
//
// Dynamic and differencing disks carry a copy of the footer at offset 0 and the footer itself in
// the last 512 bytes; fixed disks only the latter (511 bytes from Virtual PC before 2004). qemu
// reads the copy at 0 when it is there, so sbm does too (the two are identical unless damaged);
// when one of the pair is damaged the other is used with the warning SBM_VHD_FOOTER_COPY.
//
// A footer whose checksum fails is SBM_CORRUPT, as in qemu 7.2 ("Incorrect header checksum").
//
// The disk size is what qemu-img 7.2 reports: current_size for the creators that mean it
// (CURRENT_SIZE_CREATORS) or when the geometry is the maximal 65535/16/255, otherwise
// cylinders x heads x sectors x 512, the size Virtual PC shows its guest.

import type { SbmWarning } from '../../lib/warnings.js';
import {
  CURRENT_SIZE_CREATORS,
  VHD_DISK_TYPE_DIFFERENCING,
  VHD_DISK_TYPE_DYNAMIC,
  VHD_DISK_TYPE_FIXED,
  VHD_FOOTER_SIZE,
  VHD_MAX_CYLINDERS,
  VHD_MAX_HEADS,
  VHD_MAX_SECTORS_PER_TRACK,
  VHD_MAX_SIZE_BYTES,
  VHD_OLD_FOOTER_SIZE,
  VHD_SECTOR_SIZE,
} from './constants.js';
import { VHD_FOOTER, vhdChecksum } from './layouts.js';
import type { VhdFile } from './vhd-file.js';

export type VhdFooterValues = ReturnType<typeof VHD_FOOTER.decode>;

export interface VhdFooter {
  readonly values: VhdFooterValues;
  readonly diskType: number;
  readonly subformat: 'fixed' | 'dynamic' | 'differencing';
  readonly creatorApplication: string;
  /** The virtual disk size, as qemu-img reports it. */
  readonly sizeBytes: number;
  /** How the size was read: 'current_size' or 'chs'. */
  readonly sizeFrom: 'current_size' | 'chs';
  /** Bytes at the end of the file that hold the footer (512, or 511 for old fixed disks). */
  readonly trailerBytes: number;
}

type Candidate = { footer: Buffer; at: number; trailerBytes: number; checksumOk: boolean };

function candidateAt(bytes: Buffer, at: number, trailerBytes: number): Candidate | undefined {
  if (!VHD_FOOTER.matches(bytes)) return undefined;
  const stored = bytes.readUInt32BE(VHD_FOOTER.offsetOf('checksum'));
  return { footer: bytes, at, trailerBytes, checksumOk: vhdChecksum(bytes, VHD_FOOTER.offsetOf('checksum')) === stored };
}

async function tailCandidate(file: VhdFile): Promise<Candidate | undefined> {
  if (file.sizeBytes >= VHD_FOOTER_SIZE) {
    const found = candidateAt(
      await file.read(VHD_FOOTER_SIZE, file.sizeBytes - VHD_FOOTER_SIZE, 'VHD footer'),
      file.sizeBytes - VHD_FOOTER_SIZE,
      VHD_FOOTER_SIZE,
    );
    if (found !== undefined) return found;
  }
  if (file.sizeBytes >= VHD_OLD_FOOTER_SIZE) {
    const old = Buffer.alloc(VHD_FOOTER_SIZE);
    await file.readExact(old.subarray(0, VHD_OLD_FOOTER_SIZE), file.sizeBytes - VHD_OLD_FOOTER_SIZE, 'VHD footer');
    return candidateAt(old, file.sizeBytes - VHD_OLD_FOOTER_SIZE, VHD_OLD_FOOTER_SIZE);
  }
  return undefined;
}

/** Reads the footer that governs the disk, checked; warns when its twin is damaged. */
export async function readFooter(file: VhdFile, warn: (warning: SbmWarning) => void): Promise<VhdFooter> {
  const head =
    file.sizeBytes >= VHD_FOOTER_SIZE ? candidateAt(await file.read(VHD_FOOTER_SIZE, 0, 'VHD footer copy'), 0, VHD_FOOTER_SIZE) : undefined;
  const tail = await tailCandidate(file);
  if (head === undefined && tail === undefined) throw file.corrupt('not a VHD (no "conectix" footer at the start or end of the file)');
  // A footer at 0 that says "fixed" is guest data of a fixed disk, not a copy.
  const headIsCopy = head?.checksumOk && head.footer.readUInt32BE(VHD_FOOTER.offsetOf('diskType')) !== VHD_DISK_TYPE_FIXED;
  const chosen = headIsCopy ? head : tail?.checksumOk === true ? tail : undefined;
  if (chosen === undefined) {
    const bad = (tail ?? head) as Candidate;
    throw file.corrupt(`VHD footer checksum at offset ${bad.at} does not match its contents`, { offset: bad.at });
  }
  const footer = parseFooter(file, chosen);
  if (footer.diskType !== VHD_DISK_TYPE_FIXED) {
    const twin = chosen === head ? tail : head;
    if (twin === undefined || !twin.checksumOk || !twin.footer.equals(chosen.footer)) {
      const where = chosen === head ? 'at the end of the file' : 'at offset 0';
      const state = twin === undefined ? 'is missing' : twin.checksumOk ? 'differs from the one used' : 'fails its checksum';
      warn({
        code: 'SBM_VHD_FOOTER_COPY',
        message: `${file.path}: the footer ${where} ${state}; the footer at offset ${chosen.at} is used`,
        data: { path: file.path },
      });
    }
  }
  return footer;
}

function parseFooter(file: VhdFile, candidate: Candidate): VhdFooter {
  const values = VHD_FOOTER.decode(candidate.footer, 0, file.path);
  const diskType = values.diskType;
  if (diskType !== VHD_DISK_TYPE_FIXED && diskType !== VHD_DISK_TYPE_DYNAMIC && diskType !== VHD_DISK_TYPE_DIFFERENCING) {
    throw file.unsupported(`VHD disk type ${diskType} is not supported (only fixed 2, dynamic 3, differencing 4)`, { diskType });
  }
  const creatorApplication = values.creatorApplication.toString('latin1');
  const maximalGeometry =
    values.cylinders === VHD_MAX_CYLINDERS && values.heads === VHD_MAX_HEADS && values.sectorsPerTrack === VHD_MAX_SECTORS_PER_TRACK;
  const sizeFrom = CURRENT_SIZE_CREATORS.includes(creatorApplication) || maximalGeometry ? 'current_size' : 'chs';
  // qemu keeps whole sectors of current_size (it divides by 512).
  const sizeBig =
    sizeFrom === 'current_size'
      ? (values.currentSize / 512n) * 512n
      : BigInt(values.cylinders * values.heads * values.sectorsPerTrack * VHD_SECTOR_SIZE);
  if (sizeBig > BigInt(VHD_MAX_SIZE_BYTES)) {
    throw file.unsupported(`VHD disk size ${sizeBig} is larger than the format's 2040 GiB`, { sizeBytes: sizeBig.toString() });
  }
  const subformat = diskType === VHD_DISK_TYPE_FIXED ? 'fixed' : diskType === VHD_DISK_TYPE_DYNAMIC ? 'dynamic' : 'differencing';
  return { values, diskType, subformat, creatorApplication, sizeBytes: Number(sizeBig), sizeFrom, trailerBytes: candidate.trailerBytes };
}
