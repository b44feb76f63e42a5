// Real hdiutil-made encrypted bundles, rebuilt from the committed extract
// (test/fixtures/hdiutil-encrypted/: token prefix, ciphertext chunk runs of real bands and the
// same runs of each bundle's unencrypted twin; see its README), and the independent Python
// reader/writer (test/helpers/encrcdsa.py).

import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './tools.js';

export const ENCRCDSA_PY = join(REPO_ROOT, 'test', 'helpers', 'encrcdsa.py');
export const CHUNK = 512;

export type FixtureName = 'Test1Enc' | 'none-fat-aes128' | 'none-fat-aes256';

interface Run {
  readonly band: number;
  readonly firstChunk: number;
  readonly cipher: string;
  readonly twin: string;
}

interface FixtureRecord {
  readonly repository: string;
  readonly password: string;
  readonly plist: string;
  readonly tokenBytes: number;
  readonly tokenPrefix: string;
  readonly runs: readonly Run[];
}

const extract = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'hdiutil-encrypted', 'extract.json'), 'utf8')) as Record<
  FixtureName,
  FixtureRecord
>;

export interface ChunkRun {
  readonly band: number;
  readonly firstChunk: number;
  /** Plaintext of the unencrypted twin at the same place. */
  readonly twin: Buffer;
}

export interface BuiltFixture {
  readonly path: string;
  readonly password: string;
  readonly runs: readonly ChunkRun[];
}

/** The token hdiutil wrote (its prefix, then zeros up to its length). */
export function fixtureToken(name: FixtureName): Buffer {
  const record = extract[name];
  const token = Buffer.alloc(record.tokenBytes);
  Buffer.from(record.tokenPrefix, 'base64').copy(token);
  return token;
}

/**
 * Writes the bundle under `dir`: each band file holds the extract's real ciphertext chunks at
 * their places and zero bytes elsewhere (those chunks decrypt to noise; tests compare only the
 * chunks the extract holds).
 */
export async function buildFixture(dir: string, name: FixtureName): Promise<BuiltFixture> {
  const record = extract[name];
  const path = join(dir, `${name}.sparsebundle`);
  await mkdir(join(path, 'bands'), { recursive: true });
  await writeFile(join(path, 'Info.plist'), record.plist);
  await writeFile(join(path, 'Info.bckup'), record.plist);
  await writeFile(join(path, 'token'), fixtureToken(name));
  const bands = new Map<number, Buffer>();
  for (const run of record.runs) {
    const cipher = Buffer.from(run.cipher, 'base64');
    const end = run.firstChunk * CHUNK + cipher.length;
    let band = bands.get(run.band) ?? Buffer.alloc(0);
    if (band.length < end) band = Buffer.concat([band, Buffer.alloc(end - band.length)]);
    cipher.copy(band, run.firstChunk * CHUNK);
    bands.set(run.band, band);
  }
  for (const [band, bytes] of bands) await writeFile(join(path, 'bands', band.toString(16)), bytes);
  const runs = record.runs.map((run) => ({ band: run.band, firstChunk: run.firstChunk, twin: Buffer.from(run.twin, 'base64') }));
  return { path, password: record.password, runs };
}

/** Runs the Python reader/writer with the password on standard input. */
export async function encrcdsa(
  args: string[],
  password: string,
): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const result = await execa('python3', [ENCRCDSA_PY, ...args], { input: password, reject: false });
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}
