// Debug logging through the `debug` package (DEBUG=sbm:* sbm ...), loaded only when DEBUG is set:
// `debug` pulls in tty and util at start-up, a cost every sbm call would pay for nothing.

import { createRequire } from 'node:module';

export interface DebugLog {
  (formatter: string, ...args: unknown[]): void;
  readonly enabled: boolean;
}

const silent: DebugLog = Object.assign(() => undefined, { enabled: false });

/** A logger for `namespace` (e.g. 'sbm:engine'); a no-op unless DEBUG is set in the environment. */
export function debugLog(namespace: string): DebugLog {
  if (!process.env.DEBUG) return silent;
  const createDebug = createRequire(import.meta.url)('debug') as (namespace: string) => DebugLog;
  return createDebug(namespace);
}
