/** Runs the real `ferry` command (dist/ferry.mjs, the package's bin) as child processes, with bounded waits. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const CLI = fileURLToPath(new URL('../../dist/ferry.mjs', import.meta.url));
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);

export interface FerryProcess {
  child: ChildProcess;
  /** Parsed JSON lines of stdout so far (non-JSON lines are kept in `lines`). */
  events: Array<Record<string, unknown>>;
  lines: string[];
  stderr(): string;
  /** Resolves with the first event matching `match`, or rejects after `ms`. */
  waitFor(match: (e: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (128 + n for a signal), or rejects after `ms`. */
  exit(ms?: number): Promise<number>;
}

const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

export function ferry(args: string[], env: Record<string, string> = {}): FerryProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const events: Array<Record<string, unknown>> = [];
  const lines: string[] = [];
  let stderr = '';
  let pending = '';
  const watchers = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lines.push(line);
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a human line
      }
    }
    for (const w of watchers) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 9));
      for (const w of watchers) w();
    }),
  );
  let exitCode: number | undefined;
  void exited.then((c) => (exitCode = c));
  return {
    child,
    events,
    lines,
    stderr: () => stderr,
    waitFor: (match, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no matching event within ${ms} ms; events: ${JSON.stringify(events)}; stderr: ${stderr}`));
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
            reject(new Error(`exited ${exitCode} before a matching event; events: ${JSON.stringify(events)}; stderr: ${stderr}`));
          }
        };
        watchers.add(check);
        check();
      }),
    exit: (ms = 15_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`still running after ${ms} ms; stderr: ${stderr}`)), ms);
        void exited.then((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      }),
  };
}

/** Starts `ferry receive --json` on loopback, port 0; resolves once it printed its port. */
export async function receiver(dir: string, extra: string[] = []): Promise<FerryProcess & { port: number }> {
  const proc = ferry(['receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dir, ...extra]);
  const listening = await proc.waitFor((e) => e.event === 'listening');
  return Object.assign(proc, { port: listening.port as number });
}

/** Runs a command to its end. */
export async function run(args: string[], ms = 15_000): Promise<{ code: number; stdout: string; stderr: string; events: Array<Record<string, unknown>> }> {
  const proc = ferry(args);
  const code = await proc.exit(ms);
  return { code, stdout: proc.lines.join('\n'), stderr: proc.stderr(), events: proc.events };
}
