/**
 * A local user who can write inside the receiver's --dir and races it
 * (rsync CVE-2024-12747 class): folders under --dir are renamed aside and
 * replaced by symlinks to a folder outside, and put back.
 *
 * Deterministic use (test/local-user-race.test.ts): the test file mocks
 * node:fs and node:fs/promises with mockFs()/mockFsPromises(), which run
 * the racer's hook before every fs call the receiver makes while the racer
 * is armed. Odd calls swap every folder under --dir for a symlink, even calls
 * undo that, so every two consecutive receiver operations have the world
 * changed between them. So that the call sees exactly the world the hook
 * just made, each call is carried out at once, with the synchronous real
 * call (a promise-returning call gets an already settled promise; `open`
 * opens synchronously and then hands out a FileHandle reopened through
 * /proc/self/fd, which names the same open file whatever the racer does to
 * the path). The racer works on --dir's real tree, never on the paths the
 * receiver hands to fs (which may be /proc/self/fd/N/name).
 *
 * Non-deterministic use: RACER_SCRIPT, run as a child process, loops swapping
 * until its stdin closes.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
/** The real modules: createRequire goes around vitest's mocks. */
export const realFs = require('node:fs') as typeof import('node:fs');
const realFsp = require('node:fs/promises') as typeof import('node:fs/promises');

/** Marks a mocked module, so a test can check the mock reached what it imports. */
export const MOCKED = Symbol.for('ferry.test.racer.mocked');

interface Swap {
  /** Where the folder was (now a symlink to the outside folder). */
  path: string;
  /** Where the folder is meanwhile, inside --dir. */
  moved: string;
}

interface RacerState {
  root: string;
  outside: string;
  swapped: Swap[] | null;
  round: number;
  calls: number;
  swaps: number;
  /** The names of the calls the hook saw, in order (the first few thousand), for a failure's message. */
  log: string[];
  /** Racer steps that failed (the receiver changed something the racer had made). */
  anomalies: string[];
}

let state: RacerState | null = null;

export interface RacerStats {
  /** fs calls seen while armed. */
  calls: number;
  /** Folders swapped for a symlink, counted once per swap. */
  swaps: number;
  log: string[];
  anomalies: string[];
}

/**
 * Starts racing `root`'s folders against the receiver's fs calls; `outside`
 * is where the symlinks point. `firstSwap` 1: the first call swaps (odd calls
 * swap, even ones undo); 2: the first call finds the world as it is and the
 * second swaps, so that every pair of calls is raced both ways round.
 */
export function armRacer(root: string, outside: string, firstSwap: 1 | 2 = 1): void {
  if (state) throw new Error('the racer is already armed');
  state = { root, outside, swapped: firstSwap === 1 ? null : [], round: 0, calls: 0, swaps: 0, log: [], anomalies: [] };
}

/** Stops racing and puts every swapped folder back. */
export function disarmRacer(): RacerStats {
  const s = state;
  if (!s) throw new Error('the racer is not armed');
  state = null;
  if (s.swapped) undo(s);
  return { calls: s.calls, swaps: s.swaps, log: s.log, anomalies: s.anomalies };
}

export function racerArmed(): boolean {
  return state !== null;
}

/** The pre-hook: toggles the world before one receiver fs call. */
function beforeCall(name: string): void {
  const s = state;
  if (!s) return;
  s.calls++;
  if (s.log.length < 5000) s.log.push(name);
  if (s.swapped) undo(s);
  else swap(s);
}

/** Every real folder under the root (not the root), outermost first: each is renamed aside and a symlink put in its place. */
function swap(s: RacerState): void {
  s.round++;
  const swapped: Swap[] = [];
  const visit = (dir: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = realFs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      s.anomalies.push(`readdir ${dir}: ${(err as NodeJS.ErrnoException).code}`);
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      const moved = `${path}.moved-${s.round}`;
      try {
        realFs.renameSync(path, moved);
      } catch (err) {
        s.anomalies.push(`rename ${path}: ${(err as NodeJS.ErrnoException).code}`);
        continue;
      }
      try {
        realFs.symlinkSync(s.outside, path);
      } catch (err) {
        s.anomalies.push(`symlink ${path}: ${(err as NodeJS.ErrnoException).code}`);
        realFs.renameSync(moved, path);
        continue;
      }
      swapped.push({ path, moved });
      s.swaps++;
      visit(moved);
    }
  };
  visit(s.root);
  s.swapped = swapped;
}

/** Innermost first: remove the symlink, rename the folder back. */
function undo(s: RacerState): void {
  for (const { path, moved } of (s.swapped ?? []).reverse()) {
    try {
      if (realFs.lstatSync(path).isSymbolicLink()) realFs.unlinkSync(path);
      else s.anomalies.push(`${path} is no longer the racer's symlink`);
    } catch (err) {
      s.anomalies.push(`lstat ${path}: ${(err as NodeJS.ErrnoException).code}`);
    }
    try {
      realFs.renameSync(moved, path);
    } catch (err) {
      s.anomalies.push(`rename back ${moved}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  s.swapped = null;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Copies what hangs on a function (realpathSync.native, promisify.custom) onto its wrapper. */
function withProps<T extends AnyFn>(wrapper: T, original: AnyFn): T {
  for (const key of Reflect.ownKeys(original)) {
    if (key === 'length' || key === 'name' || key === 'prototype' || key === 'arguments' || key === 'caller') continue;
    Object.defineProperty(wrapper, key, Object.getOwnPropertyDescriptor(original, key)!);
  }
  return wrapper;
}

const isFunctionExport = (name: string, value: unknown): value is AnyFn => typeof value === 'function' && /^[a-z]/.test(name);

/** Callbacks whose results are (err, count, buffer) rather than (err, result). */
const BUFFER_CALLBACKS = new Set(['read', 'write', 'readv', 'writev']);
/** Callback calls with no synchronous twin used as is, or whose callback is not (err, result). */
const KEEP_ASYNC = new Set(['exists', 'watch', 'watchFile', 'unwatchFile', 'openAsBlob']);

/** node:fs with the hook before every function; while armed, callback calls are carried out at once through their Sync twin. */
export function mockFs(actual: typeof import('node:fs')): Record<string | symbol, unknown> {
  const out: Record<string | symbol, unknown> = { [MOCKED]: true };
  const sync = actual as unknown as Record<string, AnyFn | undefined>;
  for (const [name, value] of Object.entries(actual)) {
    if (name === 'default' || name === 'promises') continue;
    if (!isFunctionExport(name, value)) {
      out[name] = value;
      continue;
    }
    const twin = name.endsWith('Sync') || KEEP_ASYNC.has(name) ? undefined : sync[`${name}Sync`];
    out[name] = withProps(function (this: unknown, ...args: unknown[]): unknown {
      if (!state) return value.apply(this, args);
      beforeCall(name);
      const callback = args[args.length - 1];
      if (twin && typeof callback === 'function') {
        let result: unknown;
        let error: unknown = null;
        try {
          result = twin(...args.slice(0, -1));
        } catch (err) {
          error = err;
        }
        process.nextTick(() => (error ? callback(error) : BUFFER_CALLBACKS.has(name) ? callback(null, result, args[1]) : callback(null, result)));
        return undefined;
      }
      return value.apply(this, args);
    }, value);
  }
  out.promises = mockFsPromises(actual.promises);
  out.default = out;
  return out;
}

/** Promise calls whose first argument must be a path for the Sync twin to take it. */
const PATH_FIRST = new Set(['readFile', 'writeFile', 'appendFile']);

/** node:fs/promises with the hook before every function and every FileHandle method; while armed, each call is carried out at once. */
export function mockFsPromises(actual: typeof import('node:fs/promises')): Record<string | symbol, unknown> {
  const out: Record<string | symbol, unknown> = { [MOCKED]: true };
  const sync = realFs as unknown as Record<string, AnyFn | undefined>;
  for (const [name, value] of Object.entries(actual)) {
    if (name === 'default') continue;
    if (!isFunctionExport(name, value)) {
      out[name] = value;
      continue;
    }
    if (name === 'open') {
      out.open = async (...args: unknown[]): Promise<unknown> => {
        if (!state) return wrapHandle((await value(...args)) as import('node:fs/promises').FileHandle);
        beforeCall('open');
        return openNow(args[0] as string, args[1] as string | number | undefined, args[2] as number | undefined);
      };
      continue;
    }
    const twin = (name === 'realpath' ? realFs.realpathSync.native : sync[`${name}Sync`]) as AnyFn | undefined;
    out[name] = withProps((...args: unknown[]): unknown => {
      if (!state) return value(...args);
      beforeCall(name);
      const first = args[0];
      const takesPath = typeof first === 'string' || Buffer.isBuffer(first) || first instanceof URL;
      if (twin && name !== 'watch' && (!PATH_FIRST.has(name) || takesPath)) {
        try {
          return Promise.resolve(twin(...args));
        } catch (err) {
          return Promise.reject(err);
        }
      }
      return value(...args);
    }, value);
  }
  out.default = out;
  return out;
}

/** The access mode and the flags that still matter once the file is open (no O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW). */
function reopenFlags(flags: string | number | undefined): number {
  const c = realFs.constants;
  if (flags === undefined) return c.O_RDONLY;
  if (typeof flags === 'string') {
    const access = flags.includes('+') ? c.O_RDWR : flags.startsWith('r') ? c.O_RDONLY : c.O_WRONLY;
    return access | (flags.includes('a') ? c.O_APPEND : 0);
  }
  return flags & (3 | c.O_APPEND | c.O_DIRECTORY | c.O_SYNC | c.O_DSYNC);
}

/** Opens now (the racer's world of this very moment), then returns a FileHandle on the same open file. */
async function openNow(path: string, flags: string | number | undefined, mode: number | undefined): Promise<import('node:fs/promises').FileHandle> {
  const fd = realFs.openSync(path, flags ?? 'r', mode);
  try {
    return wrapHandle(await realFsp.open(`/proc/self/fd/${fd}`, reopenFlags(flags)));
  } finally {
    realFs.closeSync(fd);
  }
}

type Handle = import('node:fs/promises').FileHandle;

/** The (buffer, offset, length, position) a FileHandle read or write was given, in any of its call forms. */
function ioArgs(args: unknown[]): { buffer: NodeJS.ArrayBufferView; offset: number; length: number; position: number | null } {
  const [a, b, c, d] = args;
  if (ArrayBuffer.isView(a)) {
    const view = a as NodeJS.ArrayBufferView;
    if (b !== null && typeof b === 'object') {
      const o = b as { offset?: number; length?: number; position?: number | null };
      const offset = o.offset ?? 0;
      return { buffer: view, offset, length: o.length ?? view.byteLength - offset, position: o.position ?? null };
    }
    const offset = (b as number | undefined) ?? 0;
    return { buffer: view, offset, length: (c as number | undefined) ?? view.byteLength - offset, position: (d as number | null | undefined) ?? null };
  }
  const o = (a ?? {}) as { buffer?: NodeJS.ArrayBufferView; offset?: number; length?: number; position?: number | null };
  const buffer = o.buffer ?? Buffer.alloc(16384);
  const offset = o.offset ?? 0;
  return { buffer, offset, length: o.length ?? buffer.byteLength - offset, position: o.position ?? null };
}

/** The FileHandle methods, each with the hook first; while armed, carried out at once on the descriptor. */
function wrapHandle(handle: Handle): Handle {
  const h = handle as unknown as Record<string, AnyFn>;
  const at = (): number => handle.fd;
  const now: Record<string, (...args: unknown[]) => unknown> = {
    chmod: (mode) => realFs.fchmodSync(at(), mode as number),
    chown: (uid, gid) => realFs.fchownSync(at(), uid as number, gid as number),
    utimes: (atime, mtime) => realFs.futimesSync(at(), atime as number, mtime as number),
    stat: (options) => realFs.fstatSync(at(), options as { bigint: false }),
    truncate: (length) => realFs.ftruncateSync(at(), length as number | undefined),
    sync: () => realFs.fsyncSync(at()),
    datasync: () => realFs.fdatasyncSync(at()),
    writev: (buffers, position) => ({ bytesWritten: realFs.writevSync(at(), buffers as NodeJS.ArrayBufferView[], position as number | undefined), buffers }),
    readv: (buffers, position) => ({ bytesRead: realFs.readvSync(at(), buffers as NodeJS.ArrayBufferView[], position as number | undefined), buffers }),
    read: (...args) => {
      const r = ioArgs(args);
      return { bytesRead: realFs.readSync(at(), r.buffer, r.offset, r.length, r.position), buffer: r.buffer };
    },
  };
  const methods = ['chmod', 'chown', 'utimes', 'stat', 'truncate', 'sync', 'datasync', 'writev', 'readv', 'read', 'write', 'close', 'readFile', 'writeFile', 'appendFile', 'readLines', 'createReadStream', 'createWriteStream'];
  for (const name of methods) {
    const original = h[name];
    if (typeof original !== 'function') continue;
    h[name] = (...args: unknown[]): unknown => {
      if (!state) return original.apply(handle, args);
      beforeCall(`handle.${name}`);
      const direct = now[name];
      // A closed handle (fd -1) goes to the original, which rejects; never a reused descriptor number.
      if (direct && handle.fd >= 0) {
        try {
          return Promise.resolve(direct(...args));
        } catch (err) {
          return Promise.reject(err);
        }
      }
      if (name === 'write' && handle.fd >= 0 && ArrayBuffer.isView(args[0])) {
        try {
          const r = ioArgs(args);
          return Promise.resolve({ bytesWritten: realFs.writeSync(at(), r.buffer, r.offset, r.length, r.position), buffer: r.buffer });
        } catch (err) {
          return Promise.reject(err);
        }
      }
      return original.apply(handle, args);
    };
  }
  return handle;
}

/** What a folder holds, recursively, without following links: type, size, mode, mtime, links, and content. */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: number;
  mtimeMs: number;
  nlink: number;
  ino: number;
  target?: string;
  sha256?: string;
}

/** `root` itself (key '.') and everything under it, read with the real fs (never through the mocks). */
export function snapshotTree(root: string): Record<string, TreeEntry> {
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  const out: Record<string, TreeEntry> = {};
  const visit = (path: string, key: string): void => {
    const st = realFs.lstatSync(path);
    const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    const entry: TreeEntry = { type, size: st.size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, nlink: st.nlink, ino: st.ino };
    if (type === 'symlink') entry.target = realFs.readlinkSync(path);
    if (type === 'file') entry.sha256 = createHash('sha256').update(realFs.readFileSync(path)).digest('hex');
    out[key] = entry;
    if (type === 'dir') for (const name of realFs.readdirSync(path).sort()) visit(join(path, name), key === '.' ? name : `${key}/${name}`);
  };
  visit(root, '.');
  return out;
}

/**
 * The racer as a child process (`node -e RACER_SCRIPT ROOT OUTSIDE`): swaps
 * every folder under ROOT for a symlink to OUTSIDE and back, in a loop, as
 * fast as it can, until its stdin closes; then puts everything back and
 * prints one JSON line: {"rounds": N, "swaps": M}. It prints {"ready": true}
 * once it runs.
 */
export const RACER_SCRIPT = String.raw`
const fs = require('node:fs');
const { join } = require('node:path');
const [root, outside] = process.argv.slice(1);
let rounds = 0, swaps = 0, stop = false;
process.stdin.on('end', () => (stop = true)).on('close', () => (stop = true)).resume();
function swap() {
  rounds++;
  const done = [];
  const visit = (dir) => {
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const path = join(dir, e.name), moved = path + '.moved-' + rounds;
      try { fs.renameSync(path, moved); } catch { continue; }
      try { fs.symlinkSync(outside, path); } catch { try { fs.renameSync(moved, path); } catch {} continue; }
      done.push([path, moved]);
      swaps++;
      visit(moved);
    }
  };
  visit(root);
  return done;
}
function undo(done) {
  for (const [path, moved] of done.reverse()) {
    try { if (fs.lstatSync(path).isSymbolicLink()) fs.unlinkSync(path); } catch {}
    try { fs.renameSync(moved, path); } catch {}
  }
}
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
function loop() {
  for (let i = 0; i < 50 && !stop; i++) undo(swap());
  if (!stop) setImmediate(loop);
  else process.stdout.write(JSON.stringify({ rounds, swaps }) + '\n');
}
loop();
`;
