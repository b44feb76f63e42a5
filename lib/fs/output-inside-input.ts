// Refuses an output that overlaps one of the command's inputs: the output is an input, lies
// inside one (a band of the bundle being exported, a restore into the backup it reads), or, when
// it already exists and would be replaced, holds one. `--force` does not change that: replacing
// an input while reading it corrupts or deletes it.
//
// Paths are compared as the filesystem sees them, not as typed: the nearest existing ancestor of
// the output is resolved with realpath, then it and each of its ancestors are compared with the
// inputs by device and inode. That catches `..`, symlinks anywhere in either path, hard-linked
// files and bind mounts of the same folder alike.

import { realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SbmError } from '../errors.js';

export interface OverlapOptions {
  /** What the output is called in the message ("output", "backup destination", ...). */
  readonly outputLabel?: string;
  /** What the inputs are called ("input", "source bundle", "backup"). */
  readonly inputLabel?: string;
  /**
   * Also refuse an existing output that holds an input (default true). Off for outputs that are
   * only added to, never replaced (a backup set).
   */
  readonly refuseInputInsideOutput?: boolean;
}

interface Resolved {
  /** Real path of the nearest existing ancestor (the path itself when it exists). */
  readonly existing: string;
  readonly exists: boolean;
}

/** Throws SBM_OUTPUT_INSIDE_INPUT when `output` equals, lies inside, or (when replaced) holds an input. */
export async function assertOutputOutsideInputs(output: string, inputs: readonly string[], options: OverlapOptions = {}): Promise<void> {
  const label = options.outputLabel ?? 'output';
  const inputLabel = options.inputLabel ?? 'input';
  const out = await resolveNearestExisting(output);
  const outAncestors = await identitiesUpward(out.existing);
  for (const input of inputs) {
    const real = await realpath(input).catch(() => undefined);
    if (real === undefined) continue; // an input that does not exist holds nothing an output could overwrite
    const inputId = await identityOf(real);
    if (inputId === undefined) continue;
    if (outAncestors.has(inputId)) {
      const how = out.exists && (await identityOf(out.existing)) === inputId ? 'is' : 'lies inside';
      throw overlapError(
        `${label} ${output} ${how} the ${inputLabel} ${input}${real === resolve(input) ? '' : ` (${real})`}`,
        output,
        input,
      );
    }
    if (out.exists && options.refuseInputInsideOutput !== false) {
      const outId = await identityOf(out.existing);
      if (outId !== undefined && (await identitiesUpward(real)).has(outId)) {
        throw overlapError(
          `${label} ${output} holds the ${inputLabel} ${input}; replacing it would delete the ${inputLabel}`,
          output,
          input,
        );
      }
    }
  }
}

function overlapError(detail: string, output: string, input: string): SbmError {
  return new SbmError('SBM_OUTPUT_INSIDE_INPUT', `${detail}; choose a path outside it`, { output, input });
}

async function resolveNearestExisting(path: string): Promise<Resolved> {
  let candidate = resolve(path);
  for (;;) {
    const real = await realpath(candidate).catch(() => undefined);
    if (real !== undefined) return { existing: real, exists: candidate === resolve(path) };
    const parent = dirname(candidate);
    // The root always resolves; this guards against a filesystem that says otherwise.
    if (parent === candidate) return { existing: candidate, exists: false };
    candidate = parent;
  }
}

async function identityOf(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? undefined : `${info.dev}:${info.ino}`;
}

/** Device:inode of `realPath` and of every folder above it, up to the root. */
async function identitiesUpward(realPath: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let current = realPath; ; current = dirname(current)) {
    const id = await identityOf(current);
    if (id !== undefined) ids.add(id);
    if (dirname(current) === current) return ids;
  }
}

/**
 * Every string under a `file` key anywhere in an image reader's details(): the files a
 * multi-file input is made of (a VMDK's extents and each parent link), which are inputs too.
 */
export function filesNamedIn(details: unknown, found: string[] = []): string[] {
  if (Array.isArray(details)) {
    for (const item of details) filesNamedIn(item, found);
  } else if (typeof details === 'object' && details !== null) {
    for (const [key, value] of Object.entries(details)) {
      if (key === 'file' && typeof value === 'string') found.push(value);
      else filesNamedIn(value, found);
    }
  }
  return found;
}

/** What imageInputPaths needs of an opened image (formats/ implements it; lib imports no format). */
export interface DescribedImage {
  readonly formatName: string;
  details(): Promise<Record<string, unknown>>;
  /** The files it names, when details() would cost more than naming them (a staged gzip disk). */
  namedFiles?(): string[];
}

/** The paths an opened image reads: the path given, plus every other file a multi-file image names. */
export async function imageInputPaths(path: string, image: DescribedImage): Promise<string[]> {
  // A bundle is one folder (everything it reads is inside it) and raw is one file; raw's details
  // would also scan the whole file for data, so neither is asked.
  if (image.formatName === 'sparsebundle' || image.formatName === 'raw') return [path];
  return [path, ...(image.namedFiles?.() ?? filesNamedIn(await image.details()))];
}
