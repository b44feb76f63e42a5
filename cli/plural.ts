// "1 band", "2 bands": counts in human output agree with their noun.

/** `count` and the noun, singular for exactly 1 (`plural` defaults to the noun plus "s"). */
export function counted(count: number, noun: string, plural = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : plural}`;
}
