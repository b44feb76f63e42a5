// The format registry: opens any supported input by looking at its content, never at its name.
// Order matters: specific magics first, raw (no magic) last.

import { open, stat } from 'node:fs/promises';
import { SbmError, fromSystemError } from '../lib/errors.js';
import { SparseBundle } from '../lib/engine/sparse-bundle.js';
import type { ImageExporter, ImageFormat, ImageReader, OpenImageOptions, ProbeInput } from './image-format.js';
import { rawExporter } from './raw/raw-exporter.js';
import { rawFormat } from './raw/raw-format.js';
import { vmdkExporter } from './vmdk/vmdk-exporter.js';
import { vmdkFormat } from './vmdk/vmdk-format.js';

export type { ExportOptions, ImageExporter, ImageFormat, ImageReader, OpenImageOptions, ProbeInput } from './image-format.js';

const PROBE_BYTES = 64 * 1024;

const sparseBundleFormat: ImageFormat = {
  name: 'sparsebundle',
  detect: (probe) => probe.isDirectory,
  open: (path, options) => SparseBundle.open(path, { readOnly: true, onWarning: options.onWarning }),
};

/** Every known format, most specific first. Register new formats above `rawFormat`. */
export const FORMATS: readonly ImageFormat[] = [sparseBundleFormat, vmdkFormat, rawFormat];

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
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(PROBE_BYTES, info.size));
    await handle.read(head, 0, head.length, 0);
    return { path, isDirectory: false, head, sizeBytes: info.size };
  } finally {
    await handle.close();
  }
}

export async function detectFormat(path: string, formatName?: string): Promise<ImageFormat> {
  if (formatName !== undefined) {
    const format = FORMATS.find((candidate) => candidate.name === formatName);
    if (format === undefined) {
      throw new SbmError('SBM_USAGE', `unknown format "${formatName}" (known: ${FORMATS.map((f) => f.name).join(', ')})`);
    }
    return format;
  }
  const probe = await probeImage(path);
  const format = FORMATS.find((candidate) => candidate.detect(probe));
  if (format === undefined) throw new SbmError('SBM_UNKNOWN_FORMAT', `cannot tell the format of ${path}`, { path });
  return format;
}

/** Opens any supported image read-only. */
export async function openImage(path: string, options: OpenImageOptions & { format?: string } = {}): Promise<ImageReader> {
  const format = await detectFormat(path, options.format);
  return format.open(path, options);
}

/** Every export target, by `--format` name. */
export const EXPORTERS: readonly ImageExporter[] = [rawExporter, vmdkExporter];

export function findExporter(name: string): ImageExporter {
  const exporter = EXPORTERS.find((candidate) => candidate.name === name);
  if (exporter === undefined) {
    throw new SbmError('SBM_USAGE', `cannot export to "${name}" (known: ${EXPORTERS.map((e) => e.name).join(', ')})`);
  }
  return exporter;
}
