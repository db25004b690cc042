/**
 * Where incoming bytes go: a temporary file in the target folder, written in
 * order with vectored writes, and given its final name only by commit(),
 * which the session calls once the digest matched. Anything else ends in
 * discard(): no file ever appears under the final name unverified.
 */
import { randomBytes } from 'node:crypto';
import { link, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../protocol/errors.js';

/** Temporary files: hidden, recognisable, and unrelated to the (untrusted) name. */
export const TEMP_PREFIX = '.ferry-';
export const TEMP_SUFFIX = '.part';

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

export class FileSink {
  readonly tempPath: string;
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
    const tempPath = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
    try {
      return new FileSink(tempPath, await open(tempPath, 'wx', 0o600), fsync);
    } catch (err) {
      throw ioError(err, `cannot create a file in ${dir}`);
    }
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
        await writeAll(this.handle, batch, bytes);
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
async function writeAll(handle: FileHandle, buffers: Buffer[], total: number): Promise<void> {
  let rest = buffers;
  let left = total;
  while (left > 0) {
    const { bytesWritten } = await handle.writev(rest);
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
