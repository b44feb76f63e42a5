// Random tags for temporary file names. They need to be unlikely to collide, not unguessable:
// every temporary name is claimed with O_EXCL or under the bundle's lock. Math.random spares the
// commands that only write a temporary file from loading node:crypto (~3 ms of a CLI start).

/** `hexDigits` random lowercase hex digits. */
export function randomTag(hexDigits = 12): string {
  let tag = '';
  while (tag.length < hexDigits) tag += Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0');
  return tag.slice(0, hexDigits);
}
