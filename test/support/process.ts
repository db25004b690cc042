/** Child processes that print JSON lines (the ferry CLI, the test relay), with bounded waits. */
import { spawn, type ChildProcess } from 'node:child_process';

export type JsonEvent = Record<string, unknown>;

export interface JsonProcess {
  child: ChildProcess;
  /** Parsed JSON lines of stdout so far (other lines are kept in `lines`). */
  events: JsonEvent[];
  lines: string[];
  stderr(): string;
  /** Resolves with the first event matching `match`, or rejects after `ms` (or when the process exits first). */
  waitFor(match: (e: JsonEvent) => boolean, ms?: number): Promise<JsonEvent>;
  /** Resolves with the exit code (128 + n for a signal), or rejects after `ms`. */
  exit(ms?: number): Promise<number>;
  /** performance.now() at exit, once exited. */
  exitedAt(): number | undefined;
  /** performance.now() when this event's line was read. */
  timeOf(e: JsonEvent): number | undefined;
  /** With `rawStdout`: every byte of stdout so far (empty otherwise). */
  stdoutBytes(): Buffer;
  /** With `rawStdout`: resolves once stdout has carried at least `bytes` bytes; rejects after `ms` or when the process exits first. */
  waitForStdout(bytes: number, ms?: number): Promise<void>;
}

export interface SpawnJsonOptions {
  /** 'pipe' gives the child a writable `child.stdin`; default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /**
   * Keep stdout as raw bytes (`stdoutBytes()`) and read the JSON lines from
   * stderr instead: for `ferry receive --stdout`, which prints its events there.
   */
  rawStdout?: boolean;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/**
 * Runs a command whose stdout is newline-delimited JSON (ferry --json, the
 * test relay), collecting events as they come. Every wait is bounded.
 * `exited` resolves with the exit code once stdout has been read to its end.
 */
export function spawnJson(
  command: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  opts: SpawnJsonOptions = {},
): JsonProcess & { exited: Promise<number> } {
  const child = spawn(command, args, { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  const events: JsonEvent[] = [];
  const lines: string[] = [];
  const raw: Buffer[] = [];
  let rawLength = 0;
  let stderr = '';
  let pending = '';
  let exitCode: number | undefined;
  let exitedAt: number | undefined;
  const watchers = new Set<() => void>();
  const times = new WeakMap<JsonEvent, number>();
  // A child that exits while the test still writes to its stdin must not crash the run with EPIPE.
  child.stdin?.on('error', () => undefined);
  const readLines = (text: string): void => {
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lines.push(line);
      try {
        // A leading RS (0x1e) is a JSON text sequence's (RFC 7464), as twisted's log writes to a pipe.
        const event = JSON.parse(line.replace(/^\x1e/, '')) as JsonEvent;
        times.set(event, performance.now());
        events.push(event);
      } catch {
        // not JSON
      }
    }
    for (const w of [...watchers]) w();
  };
  if (opts.rawStdout) {
    child.stdout!.on('data', (chunk: Buffer) => {
      raw.push(chunk);
      rawLength += chunk.length;
      for (const w of [...watchers]) w();
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      readLines(text);
    });
  } else {
    child.stdout!.setEncoding('utf8').on('data', readLines);
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  }
  const exited = new Promise<number>((resolve) => {
    const done = (code: number): void => {
      if (exitCode !== undefined) return;
      exitCode = code;
      exitedAt = performance.now();
      resolve(code);
      for (const w of [...watchers]) w();
    };
    // 'close' (not 'exit'): stdout has been read to its end by then.
    child.once('close', (code, signal) => done(code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0)));
    child.once('error', (err) => {
      stderr += String(err);
      done(127);
    });
  });
  return {
    exited,
    child,
    events,
    lines,
    stderr: () => stderr,
    exitedAt: () => exitedAt,
    timeOf: (e) => times.get(e),
    stdoutBytes: () => Buffer.concat(raw),
    waitForStdout: (bytes, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`only ${rawLength} of ${bytes} stdout bytes within ${ms} ms; stderr: ${stderr}`));
        }, ms);
        const check = (): void => {
          if (rawLength >= bytes) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve();
          } else if (exitCode !== undefined) {
            clearTimeout(timer);
            watchers.delete(check);
            reject(new Error(`exited ${exitCode} after ${rawLength} of ${bytes} stdout bytes; stderr: ${stderr}`));
          }
        };
        watchers.add(check);
        check();
      }),
    waitFor: (match, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no matching event within ${ms} ms; events: ${summarize(events)}; stderr: ${stderr}`));
        }, ms);
        const check = (): void => {
          const found = events.find(match);
          if (found) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve(found);
          } else if (exitCode !== undefined) {
            clearTimeout(timer);
            watchers.delete(check);
            reject(new Error(`exited ${exitCode} before a matching event; events: ${summarize(events)}; stderr: ${stderr}`));
          }
        };
        watchers.add(check);
        check();
      }),
    exit: (ms = 15_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`still running after ${ms} ms; events: ${summarize(events)}; stderr: ${stderr}`)), ms);
        void exited.then((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      }),
  };
}

/** Progress events make event lists long; keep error messages readable. */
function summarize(events: JsonEvent[]): string {
  const kept = events.filter((e) => e.event !== 'progress');
  const progress = events.filter((e) => e.event === 'progress');
  const last = progress[progress.length - 1];
  return JSON.stringify(kept) + (last ? ` (+${progress.length} progress, last ${JSON.stringify(last)})` : '');
}
