// Aligned columns for human output (`sbm backups`, `sbm map`): each column as wide as its widest
// cell, numbers right-aligned, no trailing spaces.

import { printLine } from './command-kit.js';

export interface TableOptions {
  /** Put before every line. */
  readonly indent?: string;
  /** Column indexes whose cells are right-aligned (sizes and counts). */
  readonly alignRight?: readonly number[];
}

export function tableLines(header: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const right = new Set(options.alignRight ?? []);
  return [header, ...rows].map(
    (row) =>
      (options.indent ?? '') +
      row
        .map((cell, column) => (right.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0)))
        .join('  ')
        .trimEnd(),
  );
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): void {
  for (const line of tableLines(header, rows, options)) printLine(line);
}
