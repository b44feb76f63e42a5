// Helpers for tests that drive software nobody here wrote (qemu-img, nbdinfo, ...).
// A missing tool fails the test loudly: an interop test must never pass by skipping.

import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SBM_BIN = join(REPO_ROOT, 'dist', 'cli', 'sbm.js');
export const SHARED_FIXTURES = resolve(REPO_ROOT, '..', 'shared', 'fixtures');
/** The real hdiutil bundle; test/fixtures holds a committed copy so a clean checkout has it. */
export const HDIUTIL_FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'hdiutil-gpt-exfat-partial.sparsebundle');

/** Fails the test (with install advice) when `tool` is not on PATH. */
export async function requireTool(t: ExecutionContext, tool: string): Promise<void> {
  const found = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
  if (found.exitCode !== 0) {
    t.fail(`${tool} is not installed: run scripts/install-test-tools.sh (interop tests never skip)`);
    throw new Error(`${tool} missing`);
  }
}

/** A fresh temporary directory, removed when the test ends (pass or fail). */
export async function tempDir(t: ExecutionContext, prefix = 'sbm-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the built CLI; never throws on a non-zero exit so tests can assert on it. */
export async function runSbm(args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string } = {}) {
  return execa('node', [SBM_BIN, ...args], {
    reject: false,
    input: options.input,
    cwd: options.cwd,
    env: { ...options.env, NO_COLOR: '1' },
    stripFinalNewline: false,
  });
}

/** Deterministic pseudo-random bytes (xorshift32) so failures reproduce from the seed. */
export function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[index] = state & 0xff;
  }
  return out;
}

/**
 * `qemu-img create` of an encrypted image (LUKS, or qcow2 with encrypt.format=luks) first times
 * PBKDF2 on the thread's CPU clock, and fails with "Unable to get accurate CPU usage" when that
 * clock has not moved between two readings (a busy or coarse-clocked machine). That says nothing
 * about sbm: try again, up to three times, and fail on anything else at once.
 */
export async function qemuImgCreate(args: readonly string[], options: { cwd?: string } = {}): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const run = await execa('qemu-img', ['create', ...args], { reject: false, ...options });
    if (run.exitCode === 0) return;
    if (attempt >= 3 || !/Unable to get accurate CPU usage/.test(run.stderr)) {
      throw new Error(`qemu-img create ${args.join(' ')} failed (${run.exitCode}): ${run.stderr}`);
    }
  }
}
