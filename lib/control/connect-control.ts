// Finds the running `sbm mount` that holds a bundle and connects to its control socket.

import { ControlClient, type RemoteWarnings } from './control-client.js';
import { isProcessAlive, readControlFile } from './control-file.js';

/** A client of the live mount of `bundlePath`, or undefined when no live mount answers. */
/**
 * Warnings the mount raises for this client go to `warnings.onWarning` (dropped by default, as a local
 * open's are collected and dropped).
 */
export async function connectControl(
  bundlePath: string,
  warnings: RemoteWarnings = { onWarning: () => undefined, strict: false },
): Promise<ControlClient | undefined> {
  const file = await readControlFile(bundlePath);
  if (file === undefined || !isProcessAlive(file.pid)) return undefined;
  try {
    return await ControlClient.connect(bundlePath, file.socket, warnings);
  } catch {
    return undefined; // socket gone or refusing (mount stopping, or a reused pid): no live mount
  }
}
