/**
 * Starting, measuring, waiting for and killing child processes.
 *
 * Every child runs in its own process group (detached), so that
 *  - a Ctrl-C in the terminal reaches only the harness, which then kills
 *    every group it started (and nothing else), and
 *  - a shell pipeline (tar | nc) can be killed as a whole.
 *
 * CPU and peak RSS come from the kernel via GNU time (`-f '%e %U %S %M'`),
 * which reports the rusage of the command including the children it
 * waited for. Without GNU time the runs still happen, unmeasured.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const GNU_TIME = '/usr/bin/time';

/** Every child still running, across all runs, for the last-resort cleanup. */
const live = new Set();

let usageDir = null;
let logDir = null;
let counter = 0;

/** Where usage and stderr files go; null usage dir = no GNU time. */
export function configureProcesses({ usage, logs }) {
  usageDir = usage;
  logDir = logs;
}

export function hasGnuTime() {
  const r = spawnSync(GNU_TIME, ['--version'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && /GNU/.test(`${r.stdout}${r.stderr}`);
}

/** Finds an executable by name on PATH (plus sbin dirs, where sshd lives). */
export function which(name) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return null;
}

/**
 * Starts one command. stdin: 'ignore' or { file }; stdout: 'ignore', 'pipe'
 * or { file } (truncated). stderr always goes to a log file, never a pipe: a
 * grandchild holding a pipe open (sshd's session) would stall 'close'.
 */
export function launch({ label, argv, stdin = 'ignore', stdout = 'ignore' }) {
  const id = ++counter;
  const usageFile = usageDir ? join(usageDir, `${id}.txt`) : null;
  const stderrFile = join(logDir, `${id}.stderr`);
  const fullArgv = usageFile ? [GNU_TIME, '-q', '-o', usageFile, '-f', '%e %U %S %M', ...argv] : argv;

  const fds = [];
  const openFd = (spec, flags) => {
    const fd = openSync(spec.file, flags);
    fds.push(fd);
    return fd;
  };
  const stdio = [
    stdin === 'ignore' ? 'ignore' : openFd(stdin, 'r'),
    stdout === 'ignore' || stdout === 'pipe' ? stdout : openFd(stdout, 'w'),
    openFd({ file: stderrFile }, 'w'),
  ];

  const startedAt = performance.now();
  const child = spawn(fullArgv[0], fullArgv.slice(1), { stdio, detached: true });
  for (const fd of fds) closeSync(fd); // the child has its own copies
  live.add(child);

  let exitedAt = null;
  const proc = {
    id,
    label,
    child,
    startedAt,
    wrapped: usageFile !== null,
    /** Resolves once, with { code, signal, at } (at = performance.now() at exit). */
    exit: new Promise((resolve) => {
      child.on('exit', () => (exitedAt = performance.now()));
      child.on('error', (err) => {
        exitedAt ??= performance.now();
        live.delete(child);
        resolve({ code: -1, signal: null, at: performance.now(), error: err.message });
      });
      child.on('close', (code, signal) => {
        live.delete(child);
        resolve({ code, signal, at: exitedAt ?? performance.now() });
      });
    }),
    usage: () => readUsage(usageFile),
    stderrTail: (chars = 600) => tail(stderrFile, chars),
    exited: () => exitedAt !== null,
  };
  return proc;
}

/** GNU time's last line: elapsed, user, sys seconds and max RSS in KiB. */
function readUsage(file) {
  if (!file || !existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const parts = (lines.at(-1) ?? '').trim().split(/\s+/).map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isFinite(n))) return null;
  const [wallS, userS, sysS, rssKiB] = parts;
  return { wallS, userS, sysS, cpuS: round(userS + sysS, 2), rssKiB };
}

function tail(file, chars) {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text.length > chars ? `…${text.slice(-chars)}` : text;
  } catch {
    return '';
  }
}

/** The measured program's pid: GNU time's only child, or the process itself. */
function targetPid(proc) {
  if (!proc.wrapped) return proc.child.pid;
  try {
    const kids = readFileSync(`/proc/${proc.child.pid}/task/${proc.child.pid}/children`, 'utf8').trim().split(/\s+/);
    return kids[0] ? Number(kids[0]) : null;
  } catch {
    return null;
  }
}

/**
 * Signals the measured program itself, not GNU time: time ignores SIGINT
 * but would die of SIGTERM before it could report.
 */
export function signalProgram(proc, signal) {
  const pid = targetPid(proc);
  if (pid) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** True while the measured program still has children (a daemon's per-connection workers). */
export function programHasChildren(proc) {
  const pid = targetPid(proc);
  if (!pid) return false;
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '';
  } catch {
    return false;
  }
}

export function killGroup(child, signal = 'SIGKILL') {
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* the group is gone */
  }
}

/** Last-resort cleanup (Ctrl-C, crash): kill every group still running. */
export function killEverything() {
  for (const child of live) killGroup(child);
}

/**
 * The processes of one run, so a timeout or failure can kill exactly those.
 */
export class Scope {
  procs = [];

  launch(spec) {
    const proc = launch(spec);
    this.procs.push(proc);
    return proc;
  }

  /** Kills whatever of this run is still running and waits (bounded) for it to go. */
  async killAll() {
    const running = this.procs.filter((p) => !p.exited());
    for (const p of running) killGroup(p.child);
    await withTimeout(Promise.all(running.map((p) => p.exit)), 5000, () => {});
  }
}

/** Rejects with a labelled error if `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, onTimeout, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s waiting for ${what}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Asks the OS for a free loopback port by binding a throwaway server to port
 * 0. The port is free again when this returns; a race with another program
 * is possible but shows up as a failed run, not a wrong number.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Waits until something listens on 127.0.0.1:port, by reading the kernel's
 * socket table. Connecting to test it would not do: nc -l would take that
 * probe as its one connection.
 */
export async function waitForListen(port, proc, ms = 10_000) {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const deadline = performance.now() + ms;
  for (;;) {
    const table = readFileSync('/proc/net/tcp', 'utf8');
    // Columns: sl local_address rem_address st ...; st 0A is LISTEN.
    if (table.split('\n').some((line) => {
      const cols = line.trim().split(/\s+/);
      return cols[1] === needle && cols[3] === '0A';
    })) return;
    if (proc.exited()) throw new Error(`${proc.label} exited before listening: ${proc.stderrTail()}`);
    if (performance.now() > deadline) throw new Error(`${proc.label} did not listen on port ${port} within ${ms / 1000} s`);
    await sleep(2);
  }
}

export function round(n, digits) {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
