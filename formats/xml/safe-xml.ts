// The one way formats/ parses XML (Parallels' DiskDescriptor.xml and config.pvs, OVF descriptors):
// xml2js over sax in strict mode, behind three guards applied before any byte reaches the parser.
//
//   1. size: the caller's cap (descriptors are a few KB; OVFs a few MB at most);
//   2. text: UTF-8 only (a UTF-8 BOM is dropped), no NUL bytes;
//   3. no DTD: a `<!DOCTYPE` or `<!ENTITY` anywhere is refused. sax never fetches external
//      entities and does not expand entities a DTD declares, but refusing the DTD outright keeps
//      "billion laughs" and external-entity tricks out whatever the parser version does.
//
// Results keep xml2js' default shape (explicitArray: every child element is an array), which is
// the only shape that does not change when an element starts to repeat.

import { Parser } from 'xml2js';
import { SbmError } from '../../lib/errors.js';

export interface XmlOptions {
  /** What the document is, for messages ("Parallels disk descriptor"). */
  readonly what: string;
  /** The file it came from, for messages and error data. */
  readonly path: string;
  /** Largest document accepted, in bytes. */
  readonly maxBytes: number;
  /** Namespace-aware shape (xml2js `xmlns: true`): elements carry `$ns`, attributes `{ value, uri, local }`. */
  readonly namespaces?: boolean;
}

const DTD_MARKERS = /<!\s*(?:DOCTYPE|ENTITY)/i;
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** Parses `bytes` as one XML document; every refusal is SBM_CORRUPT or SBM_UNSUPPORTED naming the file. */
export async function parseXml(bytes: Buffer, options: XmlOptions): Promise<Record<string, unknown>> {
  const { what, path, maxBytes } = options;
  if (bytes.length > maxBytes) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: ${what} is ${bytes.length} bytes, more than the ${maxBytes} sbm reads`, {
      path,
      sizeBytes: bytes.length,
    });
  }
  const body = bytes.subarray(0, 3).equals(UTF8_BOM) ? bytes.subarray(3) : bytes;
  if (body.includes(0)) throw new SbmError('SBM_CORRUPT', `${path}: ${what} holds NUL bytes (not UTF-8 XML text)`, { path });
  const text = new TextDecoder('utf-8', { fatal: false }).decode(body);
  if (DTD_MARKERS.test(text)) {
    throw new SbmError('SBM_UNSUPPORTED', `${path}: ${what} declares a DTD (<!DOCTYPE or <!ENTITY); sbm refuses DTDs in descriptors`, {
      path,
    });
  }
  const parser = new Parser({
    strict: true,
    async: false,
    explicitArray: true,
    explicitRoot: true,
    xmlns: options.namespaces === true,
    // Attribute and text values stay text: numbers are parsed by the callers with their own bounds.
    attrValueProcessors: [],
    valueProcessors: [],
  });
  let parsed: unknown;
  try {
    parsed = await parser.parseStringPromise(text);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'unreadable';
    throw new SbmError('SBM_CORRUPT', `${path}: ${what} is not well-formed XML (${reason})`, { path }, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new SbmError('SBM_CORRUPT', `${path}: ${what} is empty`, { path });
  return parsed as Record<string, unknown>;
}

/** The child elements named `name` of a parsed element (xml2js arrays), or none. */
export function children(element: unknown, name: string): unknown[] {
  if (typeof element !== 'object' || element === null) return [];
  const value = (element as Record<string, unknown>)[name];
  return Array.isArray(value) ? value : [];
}

/** The text of an element xml2js returned: a string, or `_` of an element that also has attributes. */
export function textOf(element: unknown): string | undefined {
  if (typeof element === 'string') return element;
  if (typeof element === 'object' && element !== null) {
    const text = (element as Record<string, unknown>)._;
    if (typeof text === 'string') return text;
    if (!('_' in element)) return '';
  }
  return undefined;
}

/** The trimmed text of the first child `name`, or undefined when there is none. */
export function childText(element: unknown, name: string): string | undefined {
  const first = children(element, name)[0];
  return first === undefined ? undefined : textOf(first)?.trim();
}
