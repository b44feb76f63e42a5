// A token names one point in a bundle's change history: which bundle (sbm's own random uuid, not
// the plist's), which tracking epoch (a new one after every tracking reset: a copied, moved or
// restored bundle folder, lost or damaged tracking files), and which generation. Text form:
//
//   sbm1:<bundle uuid>:<epoch id, 8 hex digits>:<generation, decimal>
//
// "Changes since token G" = every band with a change record in a generation > G.

import { SbmError } from '../errors.js';
import { TOKEN_PREFIX } from './constants.js';

export interface TrackingToken {
  readonly bundleId: string;
  readonly epochId: string;
  readonly generation: number;
}

const TOKEN_PATTERN = /^sbm1:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([0-9a-f]{8}):(0|[1-9][0-9]{0,14})$/;

export function formatToken(token: TrackingToken): string {
  return `${TOKEN_PREFIX}:${token.bundleId}:${token.epochId}:${token.generation}`;
}

export function looksLikeToken(text: string): boolean {
  return text.startsWith(`${TOKEN_PREFIX}:`);
}

export function parseToken(text: string): TrackingToken {
  const match = TOKEN_PATTERN.exec(text.trim());
  if (match === null) {
    throw new SbmError('SBM_BAD_TOKEN', `"${text}" is not an sbm token (expected ${TOKEN_PREFIX}:<uuid>:<epoch>:<generation>)`, {
      token: text,
    });
  }
  return { bundleId: match[1] as string, epochId: match[2] as string, generation: Number(match[3]) };
}

/** Why a token cannot be answered from this bundle's history, or undefined when it can. */
export function refuseToken(
  token: TrackingToken,
  current: { readonly bundleId: string; readonly epochId: string; readonly openGeneration: number },
  resetReason: string | undefined,
): SbmError | undefined {
  const hint = 'full backup required';
  if (token.bundleId !== current.bundleId) {
    return new SbmError('SBM_TOKEN_FOREIGN', `token belongs to bundle ${token.bundleId}, not this one (${current.bundleId}); ${hint}`, {
      token: formatToken(token),
      bundleId: current.bundleId,
    });
  }
  if (token.epochId !== current.epochId) {
    const why =
      resetReason === undefined
        ? 'change tracking was reset since it was issued'
        : `change tracking was reset since it was issued (${resetReason})`;
    return new SbmError('SBM_TOKEN_STALE', `token is from tracking epoch ${token.epochId}; ${why}; ${hint}`, {
      token: formatToken(token),
      epochId: current.epochId,
    });
  }
  // Tokens name closed generations only, so a valid one is always below the open generation.
  if (token.generation >= current.openGeneration) {
    return new SbmError(
      'SBM_TOKEN_FUTURE',
      `token generation ${token.generation} was never issued by this bundle (open generation ${current.openGeneration}): ` +
        `the bundle was restored from an older copy, or the token was edited; ${hint}`,
      { token: formatToken(token), openGeneration: current.openGeneration },
    );
  }
  return undefined;
}
