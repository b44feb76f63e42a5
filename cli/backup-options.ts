// Options shared by `sbm backup` (thinning after each run) and `sbm thin`.

import type { ThinPolicy } from '../lib/backup/thin-backups.js';
import { parseSize } from '../lib/size.js';

export const thinOptions = {
  'keep-hourly': { type: 'number', describe: 'keep the newest backup of each of the last N hours' },
  'keep-daily': { type: 'number', describe: 'keep the newest backup of each of the last N days' },
  'keep-weekly': { type: 'number', describe: 'keep the newest backup of each of the last N weeks' },
  'max-bytes': { type: 'string', describe: 'then delete the oldest backups until the set fits, e.g. 500G' },
} as const;

export interface ThinArgs {
  'keep-hourly'?: number;
  'keep-daily'?: number;
  'keep-weekly'?: number;
  'max-bytes'?: string;
}

/** The policy the options describe, or undefined when none was given. */
export function thinPolicyOf(argv: ThinArgs): ThinPolicy | undefined {
  const policy: ThinPolicy = {
    ...(argv['keep-hourly'] === undefined ? {} : { keepHourly: argv['keep-hourly'] }),
    ...(argv['keep-daily'] === undefined ? {} : { keepDaily: argv['keep-daily'] }),
    ...(argv['keep-weekly'] === undefined ? {} : { keepWeekly: argv['keep-weekly'] }),
    ...(argv['max-bytes'] === undefined ? {} : { maxBytes: parseSize(argv['max-bytes'], '--max-bytes') }),
  };
  return Object.keys(policy).length === 0 ? undefined : policy;
}
