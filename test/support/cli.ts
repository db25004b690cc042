/** Runs the real `ferry` command (dist/ferry.mjs, the package's bin) as child processes, with bounded waits. */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { spawnJson, type JsonProcess } from './process.js';

export const CLI = fileURLToPath(new URL('../../dist/ferry.mjs', import.meta.url));
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);

export type FerryProcess = JsonProcess;

const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

/** Runs `ferry ARGS` (killed after the test if still running). */
export function ferry(args: string[], env: Record<string, string> = {}): FerryProcess {
  const proc = spawnJson(process.execPath, [CLI, ...args], { ...process.env, ...env });
  running.add(proc.child);
  void proc.exited.then(() => running.delete(proc.child));
  return proc;
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
