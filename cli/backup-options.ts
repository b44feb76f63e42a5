// Options shared by `sbm backup` (thinning after each run) and `sbm thin`.

import type { ThinPolicy } from '../lib/backup/thin-backups.js';
import { checkOptions, integer, size } from './option-values.js';

/** Counts are strings in the table so that cli/option-values.ts judges what was typed. */
export const thinOptions = {
  'keep-last': { type: 'string', describe: 'keep the N newest backups (N >= 1)' },
  'keep-hourly': { type: 'string', describe: 'keep the newest backup of each of the last N hours (N >= 1)' },
  'keep-daily': { type: 'string', describe: 'keep the newest backup of each of the last N days (N >= 1)' },
  'keep-weekly': { type: 'string', describe: 'keep the newest backup of each of the last N weeks (N >= 1)' },
  'keep-monthly': { type: 'string', describe: 'keep the newest backup of each of the last N calendar months, UTC (N >= 1)' },
  'keep-yearly': { type: 'string', describe: 'keep the newest backup of each of the last N calendar years, UTC (N >= 1)' },
  'max-bytes': { type: 'string', describe: 'then delete the oldest backups until the set fits, e.g. 500G' },
} as const;

/** 10^6 hours is over a century: anything larger is a typo, not a policy. */
const MAX_KEEP = 1_000_000;

export const THIN_RULES = {
  'keep-last': integer(1, MAX_KEEP),
  'keep-hourly': integer(1, MAX_KEEP),
  'keep-daily': integer(1, MAX_KEEP),
  'keep-weekly': integer(1, MAX_KEEP),
  'keep-monthly': integer(1, MAX_KEEP),
  'keep-yearly': integer(1, MAX_KEEP),
  'max-bytes': size(0),
} as const;

export interface ThinArgs {
  'keep-last'?: string;
  'keep-hourly'?: string;
  'keep-daily'?: string;
  'keep-weekly'?: string;
  'keep-monthly'?: string;
  'keep-yearly'?: string;
  'max-bytes'?: string;
}

/**
 * The policy the options describe, or undefined when none was given. Every value is checked
 * here (SBM_USAGE on the first bad one), so callers take the policy before touching anything.
 */
export function thinPolicyOf(argv: ThinArgs): ThinPolicy | undefined {
  const values = checkOptions(argv, THIN_RULES);
  const policy: ThinPolicy = {
    ...(values['keep-last'] === undefined ? {} : { keepLast: values['keep-last'] }),
    ...(values['keep-hourly'] === undefined ? {} : { keepHourly: values['keep-hourly'] }),
    ...(values['keep-daily'] === undefined ? {} : { keepDaily: values['keep-daily'] }),
    ...(values['keep-weekly'] === undefined ? {} : { keepWeekly: values['keep-weekly'] }),
    ...(values['keep-monthly'] === undefined ? {} : { keepMonthly: values['keep-monthly'] }),
    ...(values['keep-yearly'] === undefined ? {} : { keepYearly: values['keep-yearly'] }),
    ...(values['max-bytes'] === undefined ? {} : { maxBytes: values['max-bytes'] }),
  };
  return Object.keys(policy).length === 0 ? undefined : policy;
}
