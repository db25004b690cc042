/**
 * Where incoming bytes go: a temporary file in the target folder, written in
 * order with vectored writes, and given its final name only by commit(),
 * which the session calls once the digest matched. Anything else ends in
 * discard(): no file ever appears under the final name unverified.
 */
import { closeSync, constants as fsConstants, fchmodSync, fdatasync, futimesSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFilePrefix, type Hasher } from '../hash.js';
import { FerryError } from '../protocol/errors.js';

/**
 * Temporary files: hidden, recognisable, and unrelated to the (untrusted)
 * name: `.ferry-<32 hex>.part`. A file that can resume is named by the first
 * 16 bytes of the SHA-256 of its relative path, so the next offer of that
 * path finds it; a stream gets 16 random bytes.
 */
export const TEMP_PREFIX = '.ferry-';
export const TEMP_SUFFIX = '.part';
/** A kept partial file older than this is not resumed, and a starting receiver deletes it. */
export const PARTIAL_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** The temp file name a resumable transfer of `relativePath` uses. */
export function partialName(relativePath: string): string {
  return `${TEMP_PREFIX}${createHash('sha256').update(relativePath, 'utf8').digest('hex').slice(0, 32)}${TEMP_SUFFIX}`;
}

/** Per process: 8 random bytes once, then a counter, for temp names nobody else picks (O_EXCL checks anyway). */
const TEMP_STEM = randomBytes(8).toString('hex');
let tempCounter = 0;
function uniqueTempName(): string {
  return `${TEMP_PREFIX}${TEMP_STEM}${(tempCounter++).toString(16).padStart(16, '0')}${TEMP_SUFFIX}`;
}

/** Common to the file sink and --stdout: where the bytes of one incoming file go. */
export interface Sink {
  readonly full: boolean;
  onError: (err: FerryError) => void;
  onDrain: () => void;
  write(piece: Buffer): void;
  finish(): Promise<void>;
  commit(finalPath: string, meta: { mode: number; mtimeMs: number; overwrite: boolean }): Promise<void>;
  discard(): Promise<void>;
  /** Keeps what arrived for a later resume (a no-op where nothing can be kept). Never throws. */
  keep(): Promise<void>;
}

/** Pause the socket above this many bytes waiting for the disk; resume below the low mark. */
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
/** Buffers per writev call (IOV_MAX is 1024 on Linux). */
const MAX_IOV = 256;
/**
 * With fsync on, start a background fdatasync after this many new bytes, so
 * the disk writes while the network still delivers and the flush before
 * naming the file has little left to do.
 */
const SYNC_EVERY = 64 * 1024 * 1024;

export class FileSink implements Sink {
  readonly tempPath: string;
  /** Where the next write goes: the bytes held so far. */
  private position = 0;
  private readonly handle: FileHandle;
  private queue: Buffer[] = [];
  private queued = 0;
  private writing: Promise<void> | null = null;
  private failure: FerryError | null = null;
  private closed = false;
  /** Called once when a write fails (the session aborts at once rather than at END). */
  onError: (err: FerryError) => void = () => {};
  /** Called when the queue falls under the low-water mark after having been over the high one. */
  onDrain: () => void = () => {};
  private overHigh = false;
  /** fsync before naming the file, and flush ahead while writing. */
  private readonly fsync: boolean;
  private unsynced = 0;
  private syncing: Promise<void> | null = null;

  private constructor(tempPath: string, handle: FileHandle, fsync: boolean) {
    this.tempPath = tempPath;
    this.handle = handle;
    this.fsync = fsync;
  }

  /**
   * Creates a fresh temporary file in `dir` (O_EXCL: never follows or reuses
   * anything). `fsync`: flush it to disk before commit() names it, starting
   * early in the background.
   */
  static async create(dir: string, fsync: boolean): Promise<FileSink> {
    const tempPath = join(dir, uniqueTempName());
    try {
      return new FileSink(tempPath, await open(tempPath, 'wx', 0o600), fsync);
    } catch (err) {
      throw ioError(err, `cannot create a file in ${dir}`);
    }
  }

  /**
   * Opens the partial file of `relativePath` in `dir` to resume it, or
   * creates it. A partial file is used only if it is a regular file (never
   * through a symlink), no longer than `limit`, and younger than
   * PARTIAL_MAX_AGE_MS; otherwise it starts again empty. `offset` is the
   * number of bytes it holds.
   */
  static async openPartial(dir: string, relativePath: string, fsync: boolean, limit: number): Promise<{ sink: FileSink; offset: number }> {
    const tempPath = join(dir, partialName(relativePath));
    let handle: FileHandle | undefined;
    try {
      handle = await open(tempPath, fsConstants.O_RDWR | fsConstants.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') await unlink(tempPath).catch(() => {});
      else if (code !== 'ENOENT') throw ioError(err, `cannot open ${tempPath}`);
    }
    try {
      if (handle) {
        const info = await handle.stat();
        const usable = info.isFile() && info.size <= limit && Date.now() - info.mtimeMs < PARTIAL_MAX_AGE_MS;
        if (usable) {
          const sink = new FileSink(tempPath, handle, fsync);
          sink.position = info.size;
          return { sink, offset: info.size };
        }
        if (info.isFile()) {
          await handle.truncate(0);
          return { sink: new FileSink(tempPath, handle, fsync), offset: 0 };
        }
        await handle.close();
        throw new FerryError('ERR_IO', `${tempPath} is not a regular file`);
      }
      return { sink: new FileSink(tempPath, await open(tempPath, 'wx', 0o600), fsync), offset: 0 };
    } catch (err) {
      throw ioError(err, `cannot create a file in ${dir}`);
    }
  }

  /** Feeds the first `length` bytes held to `hasher` (to prove a resumed prefix). */
  async hashPrefix(hasher: Hasher, length: number): Promise<void> {
    const buffer = Buffer.allocUnsafe(Math.min(length, 1024 * 1024) || 1);
    if ((await hashFilePrefix(this.handle, hasher, length, buffer)) < length) {
      throw new FerryError('ERR_IO', `${this.tempPath} shrank while being read`);
    }
  }

  /** Drops what is held and starts again from byte 0 (the sender's prefix differed). */
  async restart(): Promise<void> {
    await this.finish();
    await this.handle.truncate(0).catch((err: unknown) => {
      throw ioError(err, 'cannot truncate');
    });
    this.position = 0;
  }

  /** True when the caller should stop feeding until onDrain. */
  get full(): boolean {
    return this.overHigh;
  }

  get error(): FerryError | null {
    return this.failure;
  }

  /** Queues bytes (a view that must stay untouched until written). */
  write(piece: Buffer): void {
    if (this.failure) throw this.failure;
    this.queue.push(piece);
    this.queued += piece.length;
    if (this.queued > HIGH_WATER) this.overHigh = true;
    this.writing ??= this.flush();
  }

  /** Waits until everything queued is on disk (in the page cache); throws the first write error. */
  async finish(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.syncing) await this.syncing;
    if (this.failure) throw this.failure;
  }

  /**
   * Gives the file its metadata and final name. Without `overwrite`, an
   * existing name is never replaced: the name is taken with link(), which
   * fails if it exists, even when another process created it a moment ago.
   */
  async commit(finalPath: string, meta: { mode: number; mtimeMs: number; overwrite: boolean }): Promise<void> {
    await this.finish();
    try {
      await this.handle.chmod(meta.mode & 0o777);
      const mtime = meta.mtimeMs / 1000;
      await this.handle.utimes(mtime, mtime);
      if (this.fsync) await this.handle.sync();
    } catch (err) {
      throw ioError(err, 'cannot finish the file');
    } finally {
      await this.close();
    }
    if (meta.overwrite) {
      await rename(this.tempPath, finalPath).catch((err) => {
        throw ioError(err, 'cannot rename into place');
      });
      return;
    }
    try {
      await link(this.tempPath, finalPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new FerryError('ERR_EXISTS', 'a file with that name appeared during the transfer; it was kept');
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') {
        throw ioError(err, 'cannot move into place');
      }
      // No hard links on this file system: check, then rename (a narrow race, documented).
      if (await exists(finalPath)) throw new FerryError('ERR_EXISTS', 'a file with that name appeared during the transfer; it was kept');
      await rename(this.tempPath, finalPath).catch((e) => {
        throw ioError(e, 'cannot rename into place');
      });
      return;
    }
    await unlink(this.tempPath).catch(() => {});
  }

  /** Writes out what is queued and closes, keeping the file for a resume; deletes it if that fails. Never throws. */
  async keep(): Promise<void> {
    try {
      await this.finish();
      await this.close();
    } catch {
      await this.discard();
    }
  }

  /** Closes and deletes the temporary file. Never throws. */
  async discard(): Promise<void> {
    this.failure ??= new FerryError('ERR_TRANSFER', 'discarded');
    this.queue = [];
    this.queued = 0;
    while (this.writing) await this.writing.catch(() => {});
    if (this.syncing) await this.syncing;
    await this.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  /** An early fdatasync, not awaited here: finish() waits for it; a failure fails the sink. */
  private syncInBackground(): void {
    this.unsynced = 0;
    this.syncing = this.handle
      .datasync()
      .catch((err: unknown) => {
        this.failure ??= ioError(err, 'cannot flush to disk');
        this.onError(this.failure);
      })
      .finally(() => {
        this.syncing = null;
      });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failure) {
        const batch = this.queue.splice(0, MAX_IOV);
        let bytes = 0;
        for (const b of batch) bytes += b.length;
        await writeAll(this.handle, batch, bytes, this.position);
        this.position += bytes;
        this.queued -= bytes;
        this.unsynced += bytes;
        if (this.fsync && this.unsynced >= SYNC_EVERY && !this.syncing) this.syncInBackground();
        if (this.overHigh && this.queued < LOW_WATER) {
          this.overHigh = false;
          this.onDrain();
        }
      }
    } catch (err) {
      this.failure = ioError(err, 'cannot write');
      this.queue = [];
      this.queued = 0;
      this.onError(this.failure);
    } finally {
      this.writing = null;
    }
  }
}

/** writev() until every byte is written (a regular file may still take fewer). */
async function writeAll(handle: FileHandle, buffers: Buffer[], total: number, position: number): Promise<void> {
  let rest = buffers;
  let left = total;
  while (left > 0) {
    const { bytesWritten } = await handle.writev(rest, position + total - left);
    if (bytesWritten === left) return;
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    left -= bytesWritten;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    rest = next;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function ioError(err: unknown, what: string): FerryError {
  if (err instanceof FerryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOSPC' ? 'no space left on device' : code === 'EDQUOT' ? 'disk quota exceeded' : code === 'EACCES' ? 'permission denied' : code ?? String(err);
  return new FerryError('ERR_IO', `${what}: ${why}`, { cause: err });
}

export { exists as pathExists };

/**
 * Saves a small, already verified file (at most MAX_EAGER_BYTES) the way
 * FileSink does (hidden temp file, mode and mtime, fsync, no-clobber link),
 * but with blocking calls for all but the fsync: on a tree of 10,000 files
 * of 4 KiB these calls take about 35 us a file, against about 800 us a file
 * through fs/promises and the thread pool (measured here). The fsync, which
 * waits for the disk, stays off the event loop, and many run at once.
 */
export async function commitSmall(
  dir: string,
  finalPath: string,
  pieces: readonly Buffer[],
  meta: { mode: number; mtimeMs: number; overwrite: boolean; fsync: boolean },
): Promise<void> {
  const tempPath = join(dir, uniqueTempName());
  let fd: number | undefined;
  let named = false;
  try {
    if (!meta.overwrite && lstatSync(finalPath, { throwIfNoEntry: false })) {
      throw new FerryError('ERR_EXISTS', 'a file of that name exists (the receiver can allow --overwrite)');
    }
    fd = openSync(tempPath, 'wx', 0o600);
    for (const piece of pieces) {
      for (let at = 0; at < piece.length; ) at += writeSync(fd, piece, at);
    }
    fchmodSync(fd, meta.mode & 0o777);
    futimesSync(fd, meta.mtimeMs / 1000, meta.mtimeMs / 1000);
    if (meta.fsync) {
      const handle = fd;
      await new Promise<void>((resolve, reject) => fdatasync(handle, (err) => (err ? reject(err) : resolve())));
    }
    closeSync(fd);
    fd = undefined;
    if (meta.overwrite) {
      renameSync(tempPath, finalPath);
      named = true;
      return;
    }
    try {
      linkSync(tempPath, finalPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FerryError('ERR_EXISTS', 'a file of that name exists (the receiver can allow --overwrite)');
      throw err;
    }
  } catch (err) {
    throw ioError(err, 'cannot save the file');
  } finally {
    if (fd !== undefined) closeSync(fd);
    if (!named) {
      try {
        unlinkSync(tempPath);
      } catch {
        // Not created, or already renamed.
      }
    }
  }
}
