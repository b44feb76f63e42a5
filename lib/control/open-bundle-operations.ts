// Opens a bundle for read-write-level operations: locally when the lock is free, else through
// the control channel of the `sbm mount` that holds it. Any other holder (a second sbm process, a
// dead mount's stale control.json) leaves the original SBM_LOCKED error untouched.

import { SparseBundle, type OpenBundleOptions } from '../engine/sparse-bundle.js';
import { isSbmError } from '../errors.js';
import { type BundleOperations, localOperations } from './bundle-operations.js';

export interface BundleOperationsOptions extends OpenBundleOptions {
  /**
   * The caller's sink throws at the first warning (--strict). Through a mount the request then
   * fails at the same point as a local run, before the mount records anything.
   */
  readonly strictWarnings?: boolean;
}

export async function openBundleOperations(path: string, options: BundleOperationsOptions = {}): Promise<BundleOperations> {
  try {
    return localOperations(await SparseBundle.open(path, options), { owned: true });
  } catch (error) {
    // An encrypted bundle a mount serves needs no password here: the mount holds the key. The
    // password is asked before the lock (so a wrong one writes nothing), hence SBM_ENCRYPTED.
    if (!isSbmError(error, 'SBM_LOCKED') && !isSbmError(error, 'SBM_ENCRYPTED')) throw error;
    // The control client (and node:net) loads only when a mount may hold the bundle.
    const { connectControl } = await import('./connect-control.js');
    const client = await connectControl(path, {
      onWarning: options.onWarning ?? (() => undefined),
      strict: options.strictWarnings === true,
    });
    if (client === undefined) throw error;
    return client;
  }
}
