// The OVF manifest (NAME.mf): one `ALG(file)= hex` line per file of the package, ALG SHA1,
// SHA256 or SHA512. Read leniently (spaces around the parts, CRLF, any hex case, as VirtualBox
// and ovftool variants write it), written strictly (`SHA256(name)= hex`, which every importer
// accepts). A package's bytes are trusted only after their digest matches.

import { createHash } from 'node:crypto';
import { SbmError } from '../../lib/errors.js';

export type DigestAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface ManifestEntry {
  readonly algorithm: DigestAlgorithm;
  readonly digest: string;
}

const LINE = /^\s*(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$/;
const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha1: 40, sha256: 64, sha512: 128 };

export function parseManifest(text: string, path: string): Map<string, ManifestEntry> {
  const entries = new Map<string, ManifestEntry>();
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    const match = LINE.exec(line);
    const algorithm = match?.[1]?.toLowerCase() as DigestAlgorithm | undefined;
    const name = match?.[2]?.trim();
    const digest = match?.[3]?.toLowerCase();
    if (algorithm === undefined || name === undefined || digest === undefined || digest.length !== HEX_LENGTH[algorithm]) {
      throw new SbmError('SBM_CORRUPT', `${path}: manifest line ${index + 1} is not "SHA1|SHA256|SHA512(file)= hex"`, {
        path,
        line: index + 1,
      });
    }
    if (entries.has(name)) throw new SbmError('SBM_CORRUPT', `${path}: manifest lists "${name}" twice`, { path, name });
    entries.set(name, { algorithm, digest });
  }
  return entries;
}

export function formatManifestLine(name: string, algorithm: DigestAlgorithm, digest: string): string {
  return `${algorithm.toUpperCase()}(${name})= ${digest}\n`;
}

/** A running digest of one file's bytes, fed in order. */
export function digester(algorithm: DigestAlgorithm): { update(chunk: Uint8Array): void; hex(): string } {
  const hash = createHash(algorithm);
  return {
    update: (chunk) => void hash.update(chunk),
    hex: () => hash.digest('hex'),
  };
}

export function manifestMismatch(packagePath: string, name: string, entry: ManifestEntry, actual: string): SbmError {
  return new SbmError(
    'SBM_MANIFEST_MISMATCH',
    `${packagePath}: ${name} does not match the manifest (${entry.algorithm.toUpperCase()} ${actual}, ` +
      `manifest ${entry.digest}); nothing was read from it`,
    { path: packagePath, name, algorithm: entry.algorithm, expected: entry.digest, actual },
  );
}
