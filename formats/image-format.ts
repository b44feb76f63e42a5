// What a format adapter provides: detection by content and a read-only BlockDevice reader.
// formats/index.ts holds the registry; each format lives in its own folder.

import type { PasswordSource } from '../lib/bundle/bundle-encryption.js';
import type { BlockDevice } from '../lib/block-device.js';
import type { CopyOptions, CopyResult } from '../lib/copy-device.js';
import type { WarningSink } from '../lib/warnings.js';

/** What detection may look at: never the extension alone. */
export interface ProbeInput {
  readonly path: string;
  readonly isDirectory: boolean;
  /** Up to the first 64 KiB of a regular file (empty for directories). */
  readonly head: Buffer;
  /** Up to the last 1 KiB of a regular file, for trailers (VHD footer, UDIF `koly`). */
  readonly tail?: Buffer;
  readonly sizeBytes: number;
}

export interface OpenImageOptions {
  readonly onWarning?: WarningSink;
  /** Allow descriptors to name extents or parents outside their own folder. */
  readonly allowOutside?: boolean;
  /** Which disk of a multi-disk input (a .pvm machine, an OVA/OVF package); default the first/boot disk. */
  readonly disk?: number;
  /** Asked only when the input is an encrypted sparse bundle. */
  readonly password?: PasswordSource;
}

/** A read-only device over an external image, plus what `sbm info` shows about it. */
export interface ImageReader extends BlockDevice {
  readonly formatName: string;
  /** Format-specific facts for `sbm info` (plain JSON values). */
  details(): Promise<Record<string, unknown>>;
}

export interface ImageFormat {
  readonly name: string;
  detect(probe: ProbeInput): boolean;
  open(path: string, options: OpenImageOptions): Promise<ImageReader>;
}

export interface ExportOptions {
  /** Format-specific layout, e.g. VMDK "monolithicSparse" or "streamOptimized". */
  readonly subformat?: string;
  /** Compress the data (`--compress`), for exporters whose format can (`canCompress`). */
  readonly compress?: boolean;
  readonly copy?: CopyOptions;
}

/** Writes a whole BlockDevice as a new image file at `outPath` (which must not exist). */
export interface ImageExporter {
  readonly name: string;
  readonly subformats?: readonly string[];
  /** Takes `compress` (qcow2's compressed clusters); other exporters refuse `--compress`. */
  readonly canCompress?: boolean;
  export(source: BlockDevice, outPath: string, options: ExportOptions): Promise<CopyResult>;
}
