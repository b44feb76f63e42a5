// The one check every numeric option of every command goes through, before a command touches
// anything: whole numbers (counts, ports) and sizes with suffixes, each within its range. A bad
// value is SBM_USAGE (exit 2) quoting what was typed.
//
// Numeric options are declared `type: 'string'` in the option tables on purpose: yargs reads
// `--keep-daily abc` as NaN, `--keep-daily ""` as 0 and a bare `--keep-daily` as no option at all,
// so the text the user typed is only kept, and judged here, as a string. The lean fast path
// (cli/lean-parse.ts) and yargs hand the handler the same string, so both are checked alike.

import { SbmError } from '../lib/errors.js';
import { parseSize } from '../lib/size.js';

export interface IntegerRule {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
}

export interface SizeRule {
  readonly kind: 'size';
  readonly min: number;
  readonly max?: number;
}

export type OptionRule = IntegerRule | SizeRule;
export type OptionRules = Readonly<Record<string, OptionRule>>;

/** Largest `--disk N` accepted (a machine or appliance has a handful of disks). */
export const MAX_DISK_INDEX = 9999;

export const integer = (min: number, max: number): IntegerRule => ({ kind: 'integer', min, max });
export const size = (min = 0, max?: number): SizeRule => ({ kind: 'size', min, ...(max === undefined ? {} : { max }) });

/** The value of one option: undefined when not given, else a checked number. */
export function optionValue(key: string, given: unknown, rule: OptionRule): number | undefined {
  if (given === undefined) return undefined;
  const flag = `--${key}`;
  if (Array.isArray(given)) throw new SbmError('SBM_USAGE', `${flag} was given more than once`, { option: key });
  const text = typeof given === 'string' ? given : String(given);
  let value: number;
  if (rule.kind === 'integer') {
    if (!/^\s*[0-9]+\s*$/.test(text)) {
      throw new SbmError(
        'SBM_USAGE',
        `${flag} "${text}" is not a whole number (${rangeText(rule.min, rule.max, String)}); nothing was changed`,
        {
          option: key,
          text,
        },
      );
    }
    value = Number(text);
  } else {
    value = parseSize(text, flag);
  }
  if (value < rule.min || (rule.max !== undefined && value > rule.max)) {
    const show = rule.kind === 'size' ? (bytes: number) => `${bytes} bytes` : String;
    throw new SbmError('SBM_USAGE', `${flag} ${text} is out of range (${rangeText(rule.min, rule.max, show)}); nothing was changed`, {
      option: key,
      text,
    });
  }
  return value;
}

/**
 * Checks every option `rules` names in `argv` (first bad one throws) and returns their numbers,
 * so a handler calls this first and reads the values from the result.
 */
export function checkOptions<R extends OptionRules>(argv: object, rules: R): { [K in keyof R]: number | undefined } {
  const given = argv as Readonly<Record<string, unknown>>;
  const values: Record<string, number | undefined> = {};
  for (const [key, rule] of Object.entries(rules)) values[key] = optionValue(key, given[key], rule);
  return values as { [K in keyof R]: number | undefined };
}

function rangeText(min: number, max: number | undefined, show: (value: number) => string): string {
  return max === undefined ? `at least ${show(min)}` : `${show(min)} to ${show(max)}`;
}
