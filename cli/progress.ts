// A progress bar on stderr for long work, only on a TTY and never with --json: how far along
// (bytes of the disk, or bands), the totals and the rate in human units, and an ETA. The rate
// counts the bytes actually read or written (`bytesMoved`), never the holes a copy skips: a
// sparse disk "done" at 40 GiB/s says nothing about the disk or the destination.

import cliProgress from 'cli-progress';
import { formatSize } from '../lib/size.js';

export interface ProgressUpdate {
  /** How far along, in `unit`s (bytes of the disk, or bands), holes included. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** Bytes read from the source so far (what the rate counts; bytesWritten when absent). */
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
}

export interface ProgressReporter {
  readonly onProgress?: (progress: ProgressUpdate) => void;
  stop(): void;
}

export interface ProgressSettings {
  /** What bytesDone/bytesTotal count: 'bytes' (default) or a noun such as 'bands'. */
  readonly unit?: string;
  /** Verb for the rate: "read" (default), "copied", "hashed", "written". */
  readonly moved?: string;
  /** Show the bytes moved and their rate (false for work that moves no bytes: a revert links bands). */
  readonly showRate?: boolean;
  /** For tests: where the bar goes (a TTY is required) and the clock. */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
  readonly now?: () => number;
}

/** The bar's fields for one update: human sizes, and a rate over the bytes moved (names cli-progress does not claim). */
export function progressFields(update: ProgressUpdate, seconds: number, unit = 'bytes'): Record<string, string> {
  const moved = update.bytesRead ?? update.bytesWritten ?? update.bytesDone;
  const show = unit === 'bytes' ? formatSize : String;
  return {
    doneText: show(update.bytesDone),
    totalText: unit === 'bytes' ? formatSize(update.bytesTotal) : `${update.bytesTotal} ${unit}`,
    movedText: formatSize(moved),
    rateText: `${formatSize(Math.round(moved / Math.max(0.001, seconds)))}/s`,
    etaText: etaOf(update.bytesDone, update.bytesTotal, seconds),
  };
}

/** Time left at the pace so far (through holes too: it is about the whole job), as 5s, 2m05s, 1h02m. */
export function etaOf(done: number, total: number, seconds: number): string {
  if (done >= total) return '0s';
  if (done <= 0 || seconds <= 0) return '?';
  const left = Math.round(((total - done) * seconds) / done);
  const pad = (value: number) => String(value).padStart(2, '0');
  if (left < 60) return `${left}s`;
  if (left < 3600) return `${Math.floor(left / 60)}m${pad(left % 60)}s`;
  return `${Math.floor(left / 3600)}h${pad(Math.floor((left % 3600) / 60))}m`;
}

export function progressReporter(label: string, enabled: boolean, settings: ProgressSettings = {}): ProgressReporter {
  const stream = settings.stream ?? process.stderr;
  if (!enabled || stream.isTTY !== true) return { stop: () => undefined };
  const now = settings.now ?? Date.now;
  const started = now();
  const bar = new cliProgress.SingleBar(
    {
      stream: stream as NodeJS.WriteStream,
      format:
        `${label} [{bar}] {percentage}% | {doneText} of {totalText} | ` +
        `${settings.showRate === false ? '' : `${settings.moved ?? 'read'} {movedText} at {rateText} | `}ETA {etaText}`,
      hideCursor: true,
      clearOnComplete: false,
      noTTYOutput: settings.stream !== undefined,
    },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  return {
    onProgress: (update) => {
      const payload = progressFields(update, (now() - started) / 1000, settings.unit);
      if (!running) {
        bar.start(update.bytesTotal, update.bytesDone, payload);
        running = true;
      } else {
        bar.update(update.bytesDone, payload);
      }
    },
    stop: () => {
      if (running) bar.stop();
      running = false;
    },
  };
}
