// `<bundle>/.sbm/control.json` = {version, pid, socket}: written atomically by the mount that
// serves the bundle read-write, removed when it stops. A file left by a killed mount is stale:
// clients check that the pid is alive and the socket accepts before trusting it.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundlePaths } from '../bundle/bundle-paths.js';
import { CONTROL_FILE_NAME, CONTROL_PROTOCOL_VERSION } from './constants.js';

export interface ControlFile {
  readonly version: number;
  readonly pid: number;
  readonly socket: string;
}

export function controlFilePath(bundlePath: string): string {
  return join(bundlePaths(bundlePath).sbm, CONTROL_FILE_NAME);
}

export function renderControlFile(file: ControlFile): Buffer {
  return Buffer.from(`${JSON.stringify(file)}\n`);
}

/** The control file's content, or undefined when it is missing, unreadable or not one of ours. */
export async function readControlFile(bundlePath: string): Promise<ControlFile | undefined> {
  let text: string;
  try {
    text = await readFile(controlFilePath(bundlePath), 'utf8');
  } catch {
    return undefined; // no file (no mount), or not readable by us: either way no usable mount
  }
  if (text.length > 4096) return undefined;
  try {
    const value = JSON.parse(text) as Partial<ControlFile>;
    if (value.version !== CONTROL_PROTOCOL_VERSION) return undefined;
    if (typeof value.pid !== 'number' || !Number.isSafeInteger(value.pid) || value.pid <= 0) return undefined;
    if (typeof value.socket !== 'string' || value.socket.length === 0) return undefined;
    return { version: value.version, pid: value.pid, socket: value.socket };
  } catch {
    return undefined; // torn or foreign content: treated like no mount
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
