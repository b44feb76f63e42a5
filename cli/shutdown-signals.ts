// SIGINT/SIGTERM for a long-running command that must finish its shutdown (`sbm mount`: drain,
// flush, unlock). The first signal starts the shutdown. Later ones must not kill it half-way:
// `timeout` or a service manager signalling the whole process group, or an impatient Ctrl-C,
// easily sends a second one, and Node's default action (exit 128+n) would skip the flush and
// leave acknowledged writes unflushed. So the second signal is absorbed with a note on stderr;
// a third forces the exit, after saying which steps are left undone.

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const SIGNAL_NUMBERS: Readonly<Record<(typeof SIGNALS)[number], number>> = { SIGINT: 2, SIGTERM: 15 };

export interface ShutdownSignals {
  /** Resolves at the first signal (at once if one already came). */
  readonly requested: Promise<void>;
  /** Names the shutdown steps still to run, in order; a forced exit lists them. */
  remaining(steps: readonly string[]): void;
  /** The step just finished. */
  finished(step: string): void;
}

/**
 * Installs the handlers now, so a signal during start-up also leads to a clean shutdown. They stay
 * installed until the process exits: a signal after the shutdown has nothing left to interrupt.
 */
export function shutdownSignals(): ShutdownSignals {
  let count = 0;
  let left: string[] = [];
  let start!: () => void;
  const requested = new Promise<void>((resolve) => (start = resolve));
  const onSignal = (signal: (typeof SIGNALS)[number]): void => {
    count++;
    if (count === 1) {
      start();
    } else if (count === 2) {
      process.stderr.write(`sbm: ${signal} again: still shutting down (${describe(left)}); a third signal forces the exit\n`);
    } else {
      process.stderr.write(`sbm: ${signal}: exiting now; left undone: ${describe(left)} (writes not yet flushed may be lost)\n`);
      process.exit(128 + SIGNAL_NUMBERS[signal]);
    }
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return {
    requested,
    remaining: (steps) => {
      left = [...steps];
    },
    finished: (step) => {
      left = left.filter((name) => name !== step);
    },
  };
}

function describe(steps: readonly string[]): string {
  return steps.length === 0 ? 'nothing' : steps.join(', ');
}
