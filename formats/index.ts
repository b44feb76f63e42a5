// The format registry: opens any supported input by looking at its content, never at its name.
// Detection (formats/detect/) knows every format sbm may meet; a recognised format without a
// reader here is refused with SBM_UNSUPPORTED, and raw is only the fallback for content that
// matches none of them (or the explicit `--format raw`).

import { open, stat } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../lib/errors.js';
import { readFully } from '../lib/fs/read-fully.js';
import { SparseBundle } from '../lib/engine/sparse-bundle.js';
import { PROBE_TAIL_BYTES, detectContent } from './detect/detect-content.js';
import { detectDirectory } from './detect/detect-directory.js';
import { type Detection, KNOWN_FORMAT_LABELS } from './detect/signatures.js';
import type { ImageExporter, ImageFormat, ImageReader, OpenImageOptions, ProbeInput } from './image-format.js';
import { qcow2FormatWith } from './qcow2/qcow2-format.js';
import { rawFormat } from './raw/raw-format.js';
import { vmdkFormat } from './vmdk/vmdk-format.js';
import { vhdxFormat } from './vhdx/vhdx-format.js';
import { vhdFormat } from './vhd/vhd-format.js';
import { vdiFormat } from './vdi/vdi-format.js';
import { dmgFormat } from './dmg/dmg-format.js';
import { parallelsDiskFormat, parallelsImageFormat, parallelsVmFormat } from './parallels/parallels-format.js';

export type { ExportOptions, ImageExporter, ImageFormat, ImageReader, OpenImageOptions, ProbeInput } from './image-format.js';
export type { Detection } from './detect/signatures.js';

const PROBE_BYTES = 64 * 1024;

/** OVF packages: an .ova tar (detected by its tar walk), an .ovf file or a folder holding one. */
const ovaFormat: ImageFormat = {
  name: 'ova',
  detect: () => false,
  open: async (path, options) => (await import('./ova/open-ova.js')).openOvf(path, 'ova', options),
};
const ovfFormat: ImageFormat = {
  name: 'ovf',
  detect: () => false,
  open: async (path, options) => (await import('./ova/open-ova.js')).openOvf(path, 'ovf', options),
};

const sparseBundleFormat: ImageFormat = {
  name: 'sparsebundle',
  detect: (probe) => probe.isDirectory,
  open: (path, options) => SparseBundle.open(path, { readOnly: true, onWarning: options.onWarning, password: options.password }),
};

/**
 * Every format sbm reads, by name. Readers whose formats are named by the signature table
 * (formats/detect/signatures.ts) register here under the table's name; VMDK keeps its own
 * detection (descriptor text, extents named by a descriptor beside them).
 */
export const FORMATS: readonly ImageFormat[] = [
  sparseBundleFormat,
  vmdkFormat,
  qcow2FormatWith(openImage),
  vhdxFormat,
  vhdFormat,
  vdiFormat,
  dmgFormat,
  parallelsImageFormat,
  parallelsDiskFormat,
  parallelsVmFormat,
  ovaFormat,
  ovfFormat,
  rawFormat,
];

/** Formats whose input may hold several disks, so `--disk N` means something for them. */
const MULTI_DISK_FORMATS: ReadonlySet<string> = new Set(['parallels-pvm', 'ova', 'ovf']);

export async function probeImage(path: string): Promise<ProbeInput> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw fromSystemError(error, 'cannot read input', path);
  }
  if (info.isDirectory()) return { path, isDirectory: true, head: Buffer.alloc(0), sizeBytes: 0 };
  if (!info.isFile()) {
    throw new SbmError('SBM_UNSUPPORTED', `${path} is not a regular file or bundle directory (devices are not read)`, { path });
  }
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, 'cannot read input', path);
  }
  try {
    const head = Buffer.alloc(Math.min(PROBE_BYTES, info.size));
    const headRead = await readFully(handle, head, 0);
    const tail = Buffer.alloc(Math.min(PROBE_TAIL_BYTES, info.size));
    const tailRead = await readFully(handle, tail, info.size - tail.length);
    return { path, isDirectory: false, head: head.subarray(0, headRead), tail: tail.subarray(0, tailRead), sizeBytes: info.size };
  } catch (error) {
    throw fromSystemError(error, 'cannot read input', path);
  } finally {
    await handle.close();
  }
}

/** The refusal every command gives for a recognised format without a reader. */
export function unsupportedFormat(path: string, detection: Detection): SbmError {
  return new SbmError('SBM_UNSUPPORTED', `${path}: ${detection.label} images are not supported`, { path, format: detection.name });
}

function readerNamed(name: string): ImageFormat | undefined {
  return FORMATS.find((candidate) => candidate.name === name);
}

/** What the content is: a reader's name, or a known format sbm cannot read (refused by detectFormat). */
export async function identifyImage(path: string): Promise<Detection> {
  const probe = await probeImage(path);
  if (probe.isDirectory) return (await detectDirectory(path)) ?? { name: sparseBundleFormat.name, label: 'sparse bundle' };
  if (vmdkFormat.detect(probe)) return { name: vmdkFormat.name, label: 'VMDK' };
  return detectContent(probe) ?? { name: rawFormat.name, label: 'raw' };
}

/**
 * The reader for `path`: by content, or the one `formatName` names (`--format`). A known format
 * without a reader, detected or named, is refused with SBM_UNSUPPORTED before anything is read.
 */
export async function detectFormat(path: string, formatName?: string): Promise<ImageFormat> {
  if (formatName !== undefined) {
    const named = readerNamed(formatName);
    if (named === rawFormat && (await probeImage(path)).isDirectory) {
      throw new SbmError('SBM_USAGE', `--format raw reads a file; ${path} is a folder`, { path });
    }
    if (named !== undefined) return named;
    const label = KNOWN_FORMAT_LABELS.get(formatName);
    if (label !== undefined) throw unsupportedFormat(path, { name: formatName, label });
    throw new SbmError('SBM_USAGE', `unknown format "${formatName}" (known: ${FORMATS.map((f) => f.name).join(', ')})`);
  }
  const detection = await identifyImage(path);
  const reader = readerNamed(detection.name);
  if (reader === undefined) throw unsupportedFormat(path, detection);
  return reader;
}

/** Opens any supported image read-only. */
export async function openImage(path: string, options: OpenImageOptions & { format?: string } = {}): Promise<ImageReader> {
  const format = await detectFormat(path, options.format);
  if (options.disk !== undefined && !MULTI_DISK_FORMATS.has(format.name)) {
    throw new SbmError('SBM_USAGE', `--disk picks one disk of a .pvm virtual machine or an OVA/OVF package; ${path} is one disk`, {
      path,
    });
  }
  return format.open(path, options);
}

/** Every export target, by `--format` name. */
/** Each exporter's code (and its libraries: xml2js, tar-stream, ...), loaded only when it writes. */
export const LOAD_EXPORTERS: Readonly<Record<string, () => Promise<ImageExporter>>> = {
  raw: async () => (await import('./raw/raw-exporter.js')).rawExporter,
  vmdk: async () => (await import('./vmdk/vmdk-exporter.js')).vmdkExporter,
  qcow2: async () => (await import('./qcow2/qcow2-exporter.js')).qcow2Exporter,
  vdi: async () => (await import('./vdi/vdi-exporter.js')).vdiExporter,
  vhdx: async () => (await import('./vhdx/vhdx-exporter.js')).vhdxExporter,
  ova: async () => (await import('./ova/ova-exporter.js')).ovaExporter,
};

/** An exporter known by its facts (all that choosing it needs) that loads its code to write. */
function lazyExporter(facts: Omit<ImageExporter, 'export'>): ImageExporter {
  const load = LOAD_EXPORTERS[facts.name] as () => Promise<ImageExporter>;
  return { ...facts, export: async (source, outPath, options) => (await load()).export(source, outPath, options) };
}

/** Every exporter, by the facts a test checks against the loaded exporters. */
export const EXPORTERS: readonly ImageExporter[] = [
  lazyExporter({ name: 'raw' }),
  lazyExporter({ name: 'vmdk', subformats: ['monolithicSparse', 'streamOptimized'] }),
  lazyExporter({ name: 'qcow2', canCompress: true }),
  lazyExporter({ name: 'vdi', subformats: ['dynamic'] }),
  lazyExporter({ name: 'vhdx', subformats: ['dynamic'] }),
  lazyExporter({ name: 'ova' }),
];

export function findExporter(name: string): ImageExporter {
  const exporter = EXPORTERS.find((candidate) => candidate.name === name);
  if (exporter === undefined) {
    throw new SbmError('SBM_USAGE', `cannot export to "${name}" (known: ${EXPORTERS.map((e) => e.name).join(', ')})`);
  }
  return exporter;
}
