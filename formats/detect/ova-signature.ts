// An OVA is a tar archive whose first file is the .ovf descriptor (DMTF DSP0243 §5.3; see
// ../shared/reference/ovf-ova.md §2). Detection walks the tar headers in the probed head: pax
// ('x', 'g') and GNU long-name ('L', 'K') headers come before the first member and may carry
// its real name; the first member proper must be a regular file named *.ovf. A tar whose first
// member is anything else is not an OVA (and, being no disk format, reads as raw bytes).
//
//   0    name[100]  100 mode  108 uid  116 gid  124 size[12] (octal)  136 mtime
//   148  chksum[8] (octal; computed with these 8 bytes as spaces)  156 typeflag
//   257  magic "ustar\0" (POSIX) or "ustar " (GNU)  345 prefix[155] (POSIX: dir of name)

const TAR_BLOCK = 512;
const NAME = { offset: 0, length: 100 } as const;
const SIZE = { offset: 124, length: 12 } as const;
const CHECKSUM = { offset: 148, length: 8 } as const;
const TYPEFLAG_OFFSET = 156;
const MAGIC = { offset: 257, length: 6 } as const;
const PREFIX = { offset: 345, length: 155 } as const;
/** Metadata headers before the first member worth walking; real archives have one or two. */
const MAX_HEADERS = 8;

const REGULAR_FILE_TYPES = new Set(['0', '\0', '7']);

function field(header: Buffer, at: { offset: number; length: number }): Buffer {
  return header.subarray(at.offset, at.offset + at.length);
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

/** An octal number field, or undefined when it is not one (GNU base-256 sizes included: too big to matter here). */
function octal(bytes: Buffer): number | undefined {
  const text = cString(bytes).trim();
  return /^[0-7]{1,12}$/.test(text) ? Number.parseInt(text, 8) : undefined;
}

function isTarHeader(header: Buffer): boolean {
  const magic = field(header, MAGIC).toString('latin1');
  if (magic !== 'ustar\0' && magic !== 'ustar ') return false;
  const stored = octal(field(header, CHECKSUM));
  let sum = 0;
  for (let index = 0; index < TAR_BLOCK; index++) {
    const inChecksum = index >= CHECKSUM.offset && index < CHECKSUM.offset + CHECKSUM.length;
    sum += inChecksum ? 0x20 : (header[index] ?? 0);
  }
  return stored === sum;
}

/** The `path` record of a pax extended header ("<length> path=<value>\n" records). */
function paxPath(data: Buffer): string | undefined {
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space < 0) return undefined;
    const length = Number.parseInt(data.subarray(offset, space).toString('latin1'), 10);
    if (!Number.isSafeInteger(length) || length <= space - offset) return undefined;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    if (record.startsWith('path=')) return record.slice('path='.length);
    offset += length;
  }
  return undefined;
}

function memberName(header: Buffer): string {
  const name = cString(field(header, NAME));
  const prefix = field(header, MAGIC).toString('latin1') === 'ustar\0' ? cString(field(header, PREFIX)) : '';
  return prefix.length > 0 ? `${prefix}/${name}` : name;
}

/** True when `head` (the start of a file) is a tar archive whose first file is an .ovf. */
export function isOva(head: Buffer): boolean {
  let offset = 0;
  let overrideName: string | undefined;
  for (let count = 0; count < MAX_HEADERS && offset + TAR_BLOCK <= head.length; count++) {
    const header = head.subarray(offset, offset + TAR_BLOCK);
    if (!isTarHeader(header)) return false;
    const type = String.fromCharCode(header[TYPEFLAG_OFFSET] ?? 0);
    const sizeBytes = octal(field(header, SIZE));
    if (sizeBytes === undefined) return false;
    const dataStart = offset + TAR_BLOCK;
    if (type === 'x' || type === 'L') {
      if (dataStart + sizeBytes > head.length) return false;
      const data = head.subarray(dataStart, dataStart + sizeBytes);
      overrideName = (type === 'L' ? cString(data) : paxPath(data)) ?? overrideName;
    } else if (type !== 'g' && type !== 'K') {
      const name = overrideName ?? memberName(header);
      return REGULAR_FILE_TYPES.has(type) && /\.ovf$/i.test(name);
    }
    offset = dataStart + Math.ceil(sizeBytes / TAR_BLOCK) * TAR_BLOCK;
  }
  return false;
}
