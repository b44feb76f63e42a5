// Human sizes as qemu-img and hdiutil users type them: binary multiples, optional "iB"/"B".
// "20G" = 20 GiB, "8M" = 8 MiB, "512" = 512 bytes. Also "s" suffix = 512-byte sectors (hdiutil).

import { SbmError } from './errors.js';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  b: 1,
  s: 512,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([bskmgtp]?)(?:i?b)?\s*$/i.exec(text);
  if (match === null) {
    throw new SbmError('SBM_USAGE', `${what} "${text}" is not a size (examples: 20G, 8M, 4096)`, { text });
  }
  const multiplier = MULTIPLIERS[(match[2] ?? '').toLowerCase()] ?? 1;
  const value = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(value)) {
    throw new SbmError('SBM_USAGE', `${what} "${text}" is not a whole number of bytes below 2^53`, { text });
  }
  return value;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(value) : value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
  return `${text} ${units[unit]}`;
}

/** A size as one types it, exact, in the largest unit that divides it whole: 8388608 -> "8M", 1536 -> "1536". */
export function formatSizeExact(bytes: number): string {
  const units = ['K', 'M', 'G', 'T', 'P'];
  let unit = -1;
  let value = bytes;
  while (unit < units.length - 1 && value > 0 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  return unit < 0 ? String(value) : `${value}${units[unit]}`;
}
