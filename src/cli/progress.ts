/**
 * Progress on stderr for long work (training epochs, matching passes, sweeps, evaluation). On a terminal:
 * one line redrawn in place. Elsewhere (a log file, CI, nohup, a pipe): a plain line every few seconds, so a
 * long run is seen to be alive without carriage returns in the log, and a short run prints nothing at all.
 * --quiet silences both. Small enough that a library would add more than it saves.
 */
export interface Progress {
  /** `done` of `total` units (may be fractional: a pass part-way through its batches). */
  update(label: string, done: number, total: number): void;
  /** The task ended: clears the terminal line, and restarts the clock of the plain lines. */
  done(): void;
}

/** What progress writes to: process.stderr, or a stand-in in tests. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  quiet?: boolean;
  stream?: ProgressStream;
  /** Off a terminal: the least time between two plain lines, and before the first (default 5000 ms). */
  intervalMs?: number;
  /** The clock, in ms (default Date.now). */
  now?: () => number;
}

export const PLAIN_INTERVAL_MS = 5000;

export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet) return { update() {}, done() {} };
  const now = options.now ?? Date.now;
  return stream.isTTY ? terminalProgress(stream, now) : plainProgress(stream, now, options.intervalMs ?? PLAIN_INTERVAL_MS);
}

/** `12/50, 24%` from a possibly fractional `done`. */
function counts(done: number, total: number): string {
  const whole = Math.min(total, Math.floor(done + 1e-9));
  const percent = total > 0 ? Math.floor((100 * Math.min(done, total)) / total) : 0;
  return `${whole}/${total}, ${percent}%`;
}

function terminalProgress(stream: ProgressStream, now: () => number): Progress {
  let last = 0;
  let shown = false;
  return {
    update(label, done, total) {
      const t = now();
      if (done < total && t - last < 80) return;
      last = t;
      const width = 24;
      const filled = total > 0 ? Math.round((Math.min(done, total) / total) * width) : 0;
      const columns = stream.columns || 100; // 0 on a terminal that reports no size
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${counts(done, total)} ${label}`;
      stream.write(`\r${line.slice(0, columns - 1).padEnd(Math.min(columns - 1, line.length + 10))}`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
      shown = false;
    },
  };
}

function plainProgress(stream: ProgressStream, now: () => number, intervalMs: number): Progress {
  let started: number | null = null;
  let lastLine = 0;
  return {
    update(label, done, total) {
      const t = now();
      if (started === null) {
        started = t;
        lastLine = t;
        return;
      }
      if (t - lastLine < intervalMs) return;
      lastLine = t;
      stream.write(`${label}: ${counts(done, total)}, ${Math.round((t - started) / 1000)} s\n`);
    },
    done() {
      started = null;
    },
  };
}
