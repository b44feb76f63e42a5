// Finds the running `sbm mount` that holds a bundle and connects to its control socket.

import { ControlClient } from './control-client.js';
import { isProcessAlive, readControlFile } from './control-file.js';
import type { WarningSink } from '../warnings.js';

/** A client of the live mount of `bundlePath`, or undefined when no live mount answers. */
export async function connectControl(bundlePath: string, onWarning: WarningSink = () => undefined): Promise<ControlClient | undefined> {
  const file = await readControlFile(bundlePath);
  if (file === undefined || !isProcessAlive(file.pid)) return undefined;
  try {
    return await ControlClient.connect(bundlePath, file.socket, onWarning);
  } catch {
    return undefined; // socket gone or refusing (mount stopping, or a reused pid): no live mount
  }
}
