// The `--subformat` check shared by exporters that write one layout only.

import { SbmError } from '../lib/errors.js';

/** Refuses a subformat other than `only` (absent means `only`). */
export function checkOnlySubformat(format: string, only: string, subformat: string | undefined): void {
  if (subformat === undefined || subformat === only) return;
  throw new SbmError('SBM_USAGE', `unknown ${format} subformat "${subformat}" (sbm writes ${format} as ${only} only)`, { subformat });
}
