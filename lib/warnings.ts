// Recoverable oddities (a CID mismatch, an odd bitmap size, a band edited behind sbm's back) are
// warnings with stable codes. They go to a sink the caller chooses; `--strict` in the CLI turns
// any warning into an SBM_STRICT failure.

import { SbmError } from './errors.js';

export interface SbmWarning {
  readonly code: string;
  readonly message: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

export type WarningSink = (warning: SbmWarning) => void;

/** The error `--strict` turns a warning into (the CLI's sink and a mount answering for it alike). */
export function strictWarningError(warning: SbmWarning): SbmError {
  return new SbmError('SBM_STRICT', `${warning.code}: ${warning.message}`, { warning });
}

/** Collects warnings in memory; the default sink for library callers that did not pass one. */
export class WarningList {
  readonly items: SbmWarning[] = [];
  readonly sink: WarningSink = (warning) => {
    this.items.push(warning);
  };
}
