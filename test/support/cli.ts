/** Runs the real `ferry` command (dist/ferry.mjs, the package's bin) as child processes, with bounded waits. */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { spawnJson, type JsonProcess, type SpawnJsonOptions } from './process.js';

export const CLI = fileURLToPath(new URL('../../dist/ferry.mjs', import.meta.url));
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);

export type FerryProcess = JsonProcess;

const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

/**
 * `ferry send` retries a broken connection 5 times by default, with pauses
 * of 1 s and up: tests of what one connection does see it fail at once
 * (`--retries 0`), unless they set --retries or --retry-delay themselves.
 */
export function withRetryDefault(args: string[]): string[] {
  if (args[0] !== 'send' || args.some((a) => /^--retr(ies|y-delay)(=|$)/.test(a))) return args;
  return [...args, '--retries', '0'];
}

/**
 * The code every test receiver uses and every test sender gives (through
 * FERRY_CODE, as a script would), unless a test passes --code or --insecure:
 * so the whole CLI suite runs encrypted, the default path.
 */
export const TEST_CODE = '7-orbit-velvet-cactus';

function withCode(args: string[], env: Record<string, string>): { args: string[]; env: Record<string, string> } {
  if (args.some((a) => a === '--insecure' || a === '--code' || a.startsWith('--code='))) return { args, env };
  if (args[0] === 'receive') return { args: [...args, '--code', TEST_CODE], env };
  if (args[0] === 'send') return { args, env: { FERRY_CODE: TEST_CODE, ...env } };
  return { args, env };
}

/**
 * Runs `ferry ARGS` (killed after the test if still running). `opts` can give
 * it a piped stdin (`ferry send -`) or keep its stdout as raw bytes
 * (`ferry receive --stdout`, whose events then come from stderr).
 */
export function ferry(args: string[], env: Record<string, string> = {}, opts: SpawnJsonOptions = {}): FerryProcess {
  const coded = withCode(withRetryDefault(args), env);
  const proc = spawnJson(process.execPath, [CLI, ...coded.args], { ...process.env, ...coded.env }, opts);
  running.add(proc.child);
  void proc.exited.then(() => running.delete(proc.child));
  return proc;
}

/**
 * Runs `ferry ARGS` without the test code: for a side that makes its own
 * code (a receiver or a sender going first at a relay, `send --listen`).
 */
export function ferryUncoded(args: string[], env: Record<string, string> = {}, opts: SpawnJsonOptions = {}): FerryProcess {
  const { FERRY_CODE: _unset, ...inherited } = process.env;
  const proc = spawnJson(process.execPath, [CLI, ...withRetryDefault(args)], { ...inherited, ...env }, opts);
  running.add(proc.child);
  void proc.exited.then(() => running.delete(proc.child));
  return proc;
}

/** Starts `ferry receive --json` on loopback, port 0; resolves once it printed its port. */
export async function receiver(dir: string, extra: string[] = [], opts: SpawnJsonOptions = {}): Promise<FerryProcess & { port: number }> {
  const proc = ferry(['receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dir, ...extra], {}, opts);
  const listening = await proc.waitFor((e) => e.event === 'listening');
  return Object.assign(proc, { port: listening.port as number });
}

/** Runs a command to its end. */
export async function run(args: string[], ms = 15_000): Promise<{ code: number; stdout: string; stderr: string; events: Array<Record<string, unknown>> }> {
  const proc = ferry(args);
  const code = await proc.exit(ms);
  return { code, stdout: proc.lines.join('\n'), stderr: proc.stderr(), events: proc.events };
}
