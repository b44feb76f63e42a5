// `sbm info`'s human form of a format's details: sizes as sizes, a list one item per line, an item
// (a VMDK extent, a layer of a chain) as "file: value, label value, ..." rather than a JSON blob.

import { formatSize } from '../lib/size.js';

const ITEM_INDENT = '\n    ';
/** Fields that name an item: shown first, before a colon. */
const NAME_KEYS = ['file', 'path', 'name'];
/** Fields whose value says what the item is: shown bare ("SPARSE", not "type SPARSE"). */
const BARE_KEYS = new Set(['type', 'kind', 'createType', 'format']);

/** "grainSizeSectors" -> "grain size sectors"; "allocatedBytes" -> "allocated". */
export function labelOf(key: string): string {
  return key
    .replace(/Bytes$/, '')
    .replace(/([A-Z])/g, ' $1')
    .toLowerCase();
}

/** The text after "label:" for one detail. */
export function describeDetail(key: string, value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return 'none';
    return value.map((item, index) => `${ITEM_INDENT}${value.length > 1 ? `${index + 1}. ` : ''}${describeItem(item)}`).join('');
  }
  return describeItem(value, key);
}

function describeItem(value: unknown, key = ''): string {
  if (typeof value === 'number' && /Bytes$|^size$/.test(key)) return `${formatSize(value)} (${value} bytes)`;
  if (typeof value !== 'object' || value === null) return String(value);
  const entries = Object.entries(value as Record<string, unknown>).filter(([, field]) => field !== undefined && field !== false);
  const nameEntry = entries.find(([field]) => NAME_KEYS.includes(field));
  const parts = entries
    .filter((entry) => entry !== nameEntry)
    .map(([field, fieldValue]) => {
      if (fieldValue === true) return labelOf(field); // "compressed", "unclean shutdown"
      const text = typeof fieldValue === 'number' && /Bytes$|^size$/.test(field) ? formatSize(fieldValue) : describeInline(fieldValue);
      if (BARE_KEYS.has(field)) return text;
      // "grainSizeSectors: 128" reads "grain size 128 sectors"
      return /Sectors$/.test(field) ? `${labelOf(field.replace(/Sectors$/, ''))} ${text} sectors` : `${labelOf(field)} ${text}`;
    });
  return nameEntry === undefined ? parts.join(', ') : `${String(nameEntry[1])}: ${parts.join(', ')}`;
}

function describeInline(value: unknown): string {
  if (Array.isArray(value)) return value.map(describeInline).join(' ');
  if (typeof value === 'object' && value !== null) return `(${describeItem(value)})`;
  return String(value);
}
