// A progress bar (bytes, rate, ETA) on stderr for long work, only on a TTY and never with --json.

import cliProgress from 'cli-progress';
import type { CopyProgress } from '../lib/copy-device.js';
import { formatSize } from '../lib/size.js';

export interface ProgressReporter {
  readonly onProgress?: (progress: CopyProgress) => void;
  stop(): void;
}

export function progressReporter(label: string, enabled: boolean): ProgressReporter {
  if (!enabled || !process.stderr.isTTY) return { stop: () => undefined };
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done} of {total} | {rate}/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  return {
    onProgress: ({ bytesDone, bytesTotal }) => {
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      const payload = { done: formatSize(bytesDone), total: formatSize(bytesTotal), rate: formatSize(Math.round(bytesDone / seconds)) };
      if (!running) {
        bar.start(bytesTotal, bytesDone, payload);
        running = true;
      } else {
        bar.update(bytesDone, payload);
      }
    },
    stop: () => {
      if (running) bar.stop();
    },
  };
}
