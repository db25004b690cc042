/**
 * Temporary and partial files: their names, whether a kept partial may be
 * resumed, and the sweep of stale ones.
 *
 * While a file arrives it is written to `.ferry-<32 hex>.part` in its
 * destination folder: hidden, recognisable, and unrelated to the
 * (untrusted) name. A file that can resume is named by the first 16 bytes
 * of the SHA-256 of its relative path (UTF-8, as offered), so the next offer
 * of that path finds it; every other temporary file gets a unique name.
 *
 * A local user can plant anything under a partial's name: a hard link to a
 * file elsewhere, a file of their own, a FIFO. A partial is therefore
 * resumed only if it is provably one ferry left: a regular file with one
 * link, owned by this user, mode 0600, opened without following a link.
 * Anything else is deleted and replaced, never written through.
 */
import { constants as fs, fchmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { errnoOf, ioError } from '../fs-errors.js';
import { removeQuietly } from './place.js';
import { openExisting, TargetDir, type Folder } from './target.js';

export const TEMP_PREFIX = '.ferry-';
export const TEMP_SUFFIX = '.part';
/** A kept partial file older than this is not resumed, and sweeps delete it. */
export const PARTIAL_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** The mode ferry gives its temporary files, and the one a partial must have to be resumed. */
const TEMP_MODE = 0o600;

/** Whether a file name is one of ferry's temporary names (a sender may never offer one). */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/** The temporary name a resumable transfer of `relativePath` uses. */
export function partialName(relativePath: string): string {
  return `${TEMP_PREFIX}${createHash('sha256').update(relativePath, 'utf8').digest('hex').slice(0, 32)}${TEMP_SUFFIX}`;
}

/** Per process: 8 random bytes once, then a counter, for temp names nobody else picks (O_EXCL checks anyway). */
const TEMP_STEM = randomBytes(8).toString('hex');
let tempCounter = 0;
export function uniqueTempName(): string {
  return `${TEMP_PREFIX}${TEMP_STEM}${(tempCounter++).toString(16).padStart(16, '0')}${TEMP_SUFFIX}`;
}

/**
 * Whether `name` is one of this process's unique temporary files: it is in
 * use (a small file waits under it, with the sender's mtime, maybe years
 * old, for its batch's flush: group-commit.ts), and this process names or
 * deletes it itself. Those of an earlier process are swept as usual.
 */
function isOwnTemp(name: string): boolean {
  return name.startsWith(`${TEMP_PREFIX}${TEMP_STEM}`);
}

/** Creates `name` in `folder`, exclusively (never opens or follows anything already there), mode 0600. */
export async function createTemp(folder: Folder, name: string): Promise<FileHandle> {
  try {
    const handle = await open(folder.at(name), fs.O_RDWR | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, TEMP_MODE);
    // Whatever the umask: resume recognises its partials by this mode.
    fchmodSync(handle.fd, TEMP_MODE);
    return handle;
  } catch (err) {
    throw ioError(err, `cannot create a file in ${folder.relative === '' ? 'the target folder' : folder.relative}`);
  }
}

/**
 * The partial file of `relativePath` in `folder`, to resume: `offset` is
 * the number of bytes it holds. When there is none, or it is not provably
 * ferry's (see above), or it is longer than `limit` or older than
 * PARTIAL_MAX_AGE_MS, a fresh one is made and `offset` is 0.
 */
export async function openPartial(folder: Folder, relativePath: string, limit: number): Promise<{ handle: FileHandle; name: string; offset: number }> {
  const name = partialName(relativePath);
  const kept = await reusable(folder, name, limit);
  if (kept) return { handle: kept.handle, name, offset: kept.size };
  removeQuietly(folder, name);
  return { handle: await createTemp(folder, name), name, offset: 0 };
}

async function reusable(folder: Folder, name: string, limit: number): Promise<{ handle: FileHandle; size: number } | null> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted under the name must not stall the open.
    handle = await open(folder.at(name), fs.O_RDWR | fs.O_NOFOLLOW | fs.O_NONBLOCK);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'EACCES' || code === 'ENXIO' || code === 'EISDIR') return null;
    throw ioError(err, `cannot open ${name}`);
  }
  const info = await handle.stat();
  const ours =
    info.isFile() &&
    info.nlink === 1 &&
    info.uid === process.getuid?.() &&
    (info.mode & 0o777) === TEMP_MODE &&
    info.size <= limit &&
    Date.now() - info.mtimeMs < PARTIAL_MAX_AGE_MS;
  if (ours) return { handle, size: info.size };
  await handle.close();
  return null;
}

/**
 * Deletes kept partial files under `root`: all of them, or only those older
 * than PARTIAL_MAX_AGE_MS. Reads at most `maxDirs` folders, nearest first
 * (a sweep must not walk a whole home directory given as --dir), each
 * opened from `--dir` down without following links, so a folder swapped
 * for a link mid-sweep leads nowhere. Returns how many files were deleted.
 */
export async function cleanPartials(root: string | TargetDir, options: { all: boolean; now?: number; maxDirs?: number }): Promise<number> {
  const target = typeof root === 'string' ? TargetDir.open(root) : root;
  try {
    return await sweep(target, options);
  } finally {
    if (typeof root === 'string') target.close();
  }
}

async function sweep(target: TargetDir, options: { all: boolean; now?: number; maxDirs?: number }): Promise<number> {
  const now = options.now ?? Date.now();
  let count = 0;
  let budget = options.maxDirs ?? Number.POSITIVE_INFINITY;
  const pending: string[][] = [[]];
  while (pending.length > 0 && budget-- > 0) {
    const parts = pending.shift()!;
    const folder = parts.length === 0 ? target.root : openExisting(target, parts);
    if (!folder) continue;
    try {
      const entries = await readdir(folder.path, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        if (entry.isDirectory()) {
          pending.push([...parts, entry.name]);
        } else if (entry.isFile() && isTempName(entry.name)) {
          const info = options.all ? undefined : lstatSync(folder.at(entry.name), { throwIfNoEntry: false });
          if (!options.all && (!info || now - info.mtimeMs < PARTIAL_MAX_AGE_MS || isOwnTemp(entry.name))) continue;
          try {
            unlinkSync(folder.at(entry.name));
            count++;
          } catch {
            // Gone already.
          }
        }
      }
    } finally {
      folder.close();
    }
  }
  return count;
}

/** How often a running receiver sweeps stale partials, besides once at start. */
export const SWEEP_EVERY_MS = 60 * 60 * 1000;

/** Sweeps now and then every SWEEP_EVERY_MS until stopped; never keeps the process alive. */
export function startSweeping(target: TargetDir, maxDirs: number, everyMs = SWEEP_EVERY_MS): { stop(): void; idle(): Promise<unknown> } {
  let running: Promise<unknown> | null = null;
  const run = (): void => {
    running ??= cleanPartials(target, { all: false, maxDirs })
      .catch(() => 0)
      .finally(() => (running = null));
  };
  run();
  const timer = setInterval(run, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer), idle: () => running ?? Promise.resolve() };
}
