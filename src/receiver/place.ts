/**
 * Giving a verified file its name, and its mode and times: the one path
 * every file takes, small or large, so that both behave alike on every file
 * system. All of it is relative to the descriptor of the destination folder
 * (target.ts), and modes and times are set on the file's own descriptor.
 */
import { fchmodSync, futimesSync, linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { errnoOf, ioError } from '../fs-errors.js';
import { FerryError } from '../protocol/errors.js';
import type { Folder } from './target.js';

/** What the sender said of a file or folder, and what the receiver allows of it. */
export interface Meta {
  /** Permission bits as offered (within 0o777). */
  mode: number;
  /** Milliseconds since the epoch, signed. */
  mtimeMs: number;
}

/**
 * What to give futimes() so that the file's mtime reads back as exactly
 * `ms` milliseconds, before 1970 included. Node turns a negative number of
 * seconds into "now" (a numeric string passes unchanged), and libuv keeps
 * microseconds, truncating toward zero: 1600000000.123 s, a double a hair
 * under .123, would land at ...122.999 ms. Half a microsecond away from
 * zero (more than a double's rounding at these magnitudes) makes the
 * truncation land on the millisecond itself.
 */
export function utimeSeconds(ms: number): string {
  return String(ms / 1000 + (ms < 0 ? -5e-7 : 5e-7));
}

/** Sets the mode (masked by the receiver's umask) and the mtime on an open file or folder. */
export function applyMeta(fd: number, meta: Meta, umask: number): void {
  fchmodSync(fd, meta.mode & 0o777 & ~umask);
  const seconds = utimeSeconds(meta.mtimeMs);
  futimesSync(fd, seconds, seconds);
}

const EXISTS = 'a file of that name exists (the receiver can allow --overwrite)';
const APPEARED = 'a file with that name appeared during the transfer; it was kept';
/** link() fails this way where the file system has no hard links (vfat, some FUSE and network mounts). */
const NO_HARD_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS']);

/** Refuses early, before any data is kept, when the name is taken (and --overwrite is off). */
export function checkFree(folder: Folder, name: string, overwrite: boolean): void {
  if (!overwrite && lstatSync(folder.at(name), { throwIfNoEntry: false })) throw new FerryError('ERR_EXISTS', EXISTS);
}

/**
 * Moves the temporary file `temp` to `name`, both in `folder`. Without
 * `overwrite` an existing name is never replaced: the name is taken with
 * link(), which fails if it exists, even when another program created it a
 * moment ago. Where the file system has no hard links, an lstat and a
 * rename stand in, with a window of a few microseconds between them.
 * `link` is a seam for tests (a file system without hard links).
 */
export function nameIntoPlace(folder: Folder, temp: string, name: string, overwrite: boolean, link: typeof linkSync = linkSync): void {
  const from = folder.at(temp);
  const to = folder.at(name);
  try {
    if (overwrite) {
      renameSync(from, to);
      return;
    }
    try {
      link(from, to);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EEXIST') throw new FerryError('ERR_EXISTS', APPEARED);
      if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
      if (lstatSync(to, { throwIfNoEntry: false })) throw new FerryError('ERR_EXISTS', APPEARED);
      renameSync(from, to);
      return;
    }
  } catch (err) {
    throw ioError(err, 'cannot move the file into place');
  }
  // Named: the temporary name is only a second link now.
  removeQuietly(folder, temp);
}

/** Deletes `name` in `folder` if it is there. Never throws. */
export function removeQuietly(folder: Folder, name: string): void {
  try {
    unlinkSync(folder.at(name));
  } catch {
    // Already gone, or never made.
  }
}
