// Where the password of an encrypted bundle comes from, as with hdiutil: `--stdinpass` reads it
// from standard input (everything up to a NUL byte or the end, used as given: `echo pw |` sets
// "pw\n", so use `printf %s`), otherwise a prompt on the terminal with echo off. Never from a
// command-line value (it would show in `ps` and shell history). Asked only when a bundle turns
// out to be encrypted, and at most once per command (restore opens two bundles).

import type { NewBundleEncryption, PasswordSource } from '../lib/bundle/bundle-encryption.js';
import { SbmError } from '../lib/errors.js';

export interface PasswordOptions {
  stdinpass?: boolean;
}

/** Bounds what --stdinpass reads: a password is short, a piped disk image is a mistake. */
const MAX_PASSWORD_BYTES = 64 * 1024;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const DELETE = 0x7f;

export const passwordOption = {
  stdinpass: {
    type: 'boolean',
    default: false,
    describe: 'read the password of an encrypted bundle from standard input (as hdiutil); without it, a terminal prompts',
  },
} as const;

/**
 * The one answer of this process: a command asks at most once, whether for the bundle it opens,
 * the bundle it makes, or both (convert and restore read and write with the same password).
 */
let answer: Promise<Uint8Array | undefined> | undefined;

/** The password source for a command's arguments. */
export function passwordSource(argv: PasswordOptions): PasswordSource {
  return () => {
    answer ??= askPassword(argv.stdinpass === true);
    return answer;
  };
}

/** A new bundle's password: the one already given, else standard input with --stdinpass, else asked twice at a terminal. */
export async function newPassword(argv: PasswordOptions): Promise<Uint8Array | undefined> {
  answer ??= process.stdin.isTTY ? promptTwice() : askPassword(argv.stdinpass === true);
  return answer;
}

/** How `--encryption NAME` encrypts a new bundle; refused before anything is made when no password is at hand. */
export async function newEncryption(name: string | undefined, argv: PasswordOptions): Promise<NewBundleEncryption | undefined> {
  if (name === undefined) return undefined;
  const password = await newPassword(argv);
  if (password === undefined) {
    throw new SbmError('SBM_USAGE', '--encryption needs a password: pipe it with --stdinpass, or run at a terminal to be asked');
  }
  if (password.length === 0) throw new SbmError('SBM_USAGE', '--encryption needs a password that is not empty');
  return { keyBits: name === 'AES-128' ? 128 : 256, password };
}

async function promptTwice(): Promise<Uint8Array> {
  const first = await promptHidden('Enter a new password to secure the bundle: ');
  const again = await promptHidden('Re-enter the new password: ');
  if (!Buffer.from(first).equals(Buffer.from(again))) throw new SbmError('SBM_USAGE', 'the two passwords differ; nothing was created');
  return first;
}

async function askPassword(fromStdin: boolean): Promise<Uint8Array | undefined> {
  if (process.stdin.isTTY) return promptHidden('Enter password to access the encrypted bundle: ');
  if (!fromStdin) return undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > MAX_PASSWORD_BYTES)
      throw new SbmError('SBM_USAGE', `--stdinpass read more than ${MAX_PASSWORD_BYTES} bytes: not a password`);
  }
  const input = Buffer.concat(chunks);
  const end = input.indexOf(0);
  return end < 0 ? input : input.subarray(0, end);
}

/** Reads one line from the terminal in raw mode, echoing nothing. */
function promptHidden(prompt: string): Promise<Uint8Array> {
  const stdin = process.stdin;
  // Echo goes off before the prompt appears, so an answer typed the moment it shows is never echoed.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.resume();
  return new Promise((resolve, reject) => {
    const bytes: number[] = [];
    const finish = (error?: SbmError) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error === undefined) resolve(Buffer.from(bytes));
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      for (const byte of chunk) {
        if (byte === 0x0d || byte === 0x0a || byte === CTRL_D) return finish();
        if (byte === CTRL_C) return finish(new SbmError('SBM_INTERRUPTED', 'password prompt interrupted'));
        if (byte === DELETE || byte === BACKSPACE) {
          // One character back: its UTF-8 continuation bytes (10xxxxxx) and its first byte.
          while (bytes.length > 0 && ((bytes[bytes.length - 1] as number) & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else bytes.push(byte);
      }
    };
    stdin.on('data', onData);
  });
}
