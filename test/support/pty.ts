/**
 * The real `ferry` command on a fresh pseudo-terminal (util-linux `script`):
 * what a person at a terminal sees and types. Killed after the test if
 * still running; every wait bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach } from 'vitest';
import { CLI } from './cli.js';
import { within } from './files.js';

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface Terminal {
  /** Everything drawn so far, escapes included. */
  screen(): string;
  type(text: string): void;
  /** Resolves once `text` has been drawn. */
  shows(text: string): Promise<void>;
  /** The exit code (128 + n for a signal). */
  exit(): Promise<number>;
}

/**
 * `ferry ARGS` with stdin, stdout and stderr on one pseudo-terminal, in
 * `env` (the caller's environment by default); exit() waits `exitMs` at most.
 */
export function onTerminal(args: string[], options: { env?: NodeJS.ProcessEnv; exitMs?: number } = {}): Terminal {
  const env = options.env ?? process.env;
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.add(child);
  let output = '';
  const watchers = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    for (const w of [...watchers]) w();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15))));
  return {
    screen: () => output,
    type: (text) => void child.stdin.write(text),
    shows: (text) =>
      within(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (!output.includes(text)) return;
            watchers.delete(check);
            resolve();
          };
          watchers.add(check);
          check();
        }),
        10_000,
        `${JSON.stringify(text)} on the terminal`,
      ),
    exit: () => within(exited, options.exitMs ?? 15_000, `ferry ${args[0]} to exit`),
  };
}
