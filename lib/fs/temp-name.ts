// Random tags for temporary file names. They need to be unlikely to collide, not unguessable:
// temporary names are claimed exclusively (O_EXCL, COPYFILE_EXCL, a plain mkdir), so a collision
// or a name someone guessed fails the operation instead of sharing a file; the one made by a
// rename (a snapshot being deleted) is made under the bundle's lock, as most others are too.
// Math.random spares the commands that only write a temporary file from loading node:crypto,
// which would otherwise be part of their start-up.

/** `hexDigits` random lowercase hex digits. */
export function randomTag(hexDigits = 12): string {
  let tag = '';
  while (tag.length < hexDigits)
    tag += Math.floor(Math.random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  return tag.slice(0, hexDigits);
}
