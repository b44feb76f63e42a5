// What an output's name promises. `out.vmdk` or `new.raw` names an image file: a command that
// makes sparse bundles (folders) must not quietly make a folder with that name. Each command
// either writes the named format (where an exporter exists) or refuses with a hint.

import { extname } from 'node:path';
import { EXPORTERS } from '../formats/index.js';
import { SbmError } from '../lib/errors.js';

export const BUNDLE_EXTENSION = '.sparsebundle';

/** Image extensions and the exporter that writes each (undefined: sbm cannot write it). */
const IMAGE_EXTENSIONS: Readonly<Record<string, string | undefined>> = {
  '.vmdk': 'vmdk',
  '.raw': 'raw',
  '.img': 'raw',
  '.qcow2': 'qcow2',
  '.vdi': 'vdi',
  '.vhdx': 'vhdx',
  '.ova': 'ova',
};

/** The formats sbm can write, for help texts and hints: `raw|vmdk|...`. */
export function writableFormats(separator = '|'): string {
  return EXPORTERS.map((exporter) => exporter.name).join(separator);
}

/** The output names that choose an exporter, for help texts: `.vmdk, .raw, ...`. */
export function writableExtensions(): string {
  return Object.keys(IMAGE_EXTENSIONS)
    .filter((extension) => IMAGE_EXTENSIONS[extension] !== undefined)
    .join(', ');
}

export interface ImageExtension {
  /** The extension as written, e.g. `.VMDK`. */
  readonly extension: string;
  /** The exporter (`raw`, `vmdk`) that writes this format, when sbm has one. */
  readonly exporter: string | undefined;
}

/** The image format an output's extension names, or undefined for any other name. */
export function imageExtensionOf(path: string): ImageExtension | undefined {
  const extension = extname(path.replace(/\/+$/, ''));
  const key = extension.toLowerCase();
  if (!Object.hasOwn(IMAGE_EXTENSIONS, key)) return undefined;
  return { extension, exporter: IMAGE_EXTENSIONS[key] };
}

/**
 * Refuses a bundle output named like an image file, before anything is read or written.
 * `hint` says what to run instead for a format sbm can write.
 */
export function refuseImageNamedBundle(path: string, what: string, hint: (exporter: string) => string): void {
  const image = imageExtensionOf(path);
  if (image === undefined) return;
  const instead =
    image.exporter === undefined
      ? `sbm cannot write ${image.extension} images (sbm export --format writes ${writableFormats(', ')})`
      : hint(image.exporter);
  throw new SbmError(
    'SBM_USAGE',
    `${path}: ${what} makes a sparse bundle (a folder), not a ${image.extension} file; ${instead}; nothing was written`,
    {
      path,
      extension: image.extension,
    },
  );
}
