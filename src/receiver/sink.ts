/**
 * Where the bytes of one accepted file go while they arrive: a temporary
 * file, written in order with vectored writes, with backpressure to the
 * socket. What becomes of the file afterwards (named, kept for a resume,
 * deleted) is IncomingFile's decision, not the sink's.
 */
import type { FileHandle } from 'node:fs/promises';
import { ioError } from '../fs-errors.js';
import { hashFilePrefix, type Hasher } from '../hash.js';
import { FerryError } from '../protocol/errors.js';
import { SYNC_EVERY, datasync } from './fsync.js';

/** Common to the file sink and --stdout: where the bytes of one incoming file go. */
export interface Sink {
  readonly full: boolean;
  onError: (err: FerryError) => void;
  onDrain: () => void;
  write(piece: Buffer): void;
  /** Waits until everything written is out (on disk, or in the stream); throws the first write error. */
  finish(): Promise<void>;
}

/** Pause the socket above this many bytes waiting for the disk; resume below the low mark. */
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
/** Buffers per writev call (IOV_MAX is 1024 on Linux). */
const MAX_IOV = 256;

export class FileSink implements Sink {
  readonly handle: FileHandle;
  /** Where the next write goes: the bytes held so far. */
  private position: number;
  private queue: Buffer[] = [];
  private queued = 0;
  private writing: Promise<void> | null = null;
  private failure: FerryError | null = null;
  /** Called once when a write fails (the session aborts at once rather than at END). */
  onError: (err: FerryError) => void = () => {};
  /** Called when the queue falls under the low-water mark after having been over the high one. */
  onDrain: () => void = () => {};
  private overHigh = false;
  /** Flush ahead in the background while writing (fsync.ts). */
  private readonly fsync: boolean;
  private unsynced = 0;
  private syncing: Promise<void> | null = null;

  /** `position`: the bytes the file already holds (a resumed partial), where writing goes on. */
  constructor(handle: FileHandle, position: number, fsync: boolean) {
    this.handle = handle;
    this.position = position;
    this.fsync = fsync;
  }

  /** True when the caller should stop feeding until onDrain. */
  get full(): boolean {
    return this.overHigh;
  }

  /** Queues bytes (a view that must stay untouched until written). */
  write(piece: Buffer): void {
    if (this.failure) throw this.failure;
    this.queue.push(piece);
    this.queued += piece.length;
    if (this.queued > HIGH_WATER) this.overHigh = true;
    this.writing ??= this.flush();
  }

  async finish(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.syncing) await this.syncing;
    if (this.failure) throw this.failure;
  }

  /** Feeds the first `length` bytes held to `hasher` (to prove a resumed prefix). */
  async hashPrefix(hasher: Hasher, length: number): Promise<void> {
    const buffer = Buffer.allocUnsafe(Math.min(length, 1024 * 1024) || 1);
    if ((await hashFilePrefix(this.handle, hasher, length, buffer)) < length) {
      throw new FerryError('ERR_IO', 'the partial file shrank while being read');
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

  /** Stops writing: what is queued is dropped. Waits for writes under way. Never throws. */
  async abandon(): Promise<void> {
    this.failure ??= new FerryError('ERR_TRANSFER', 'abandoned');
    this.queue = [];
    this.queued = 0;
    while (this.writing) await this.writing.catch(() => {});
    if (this.syncing) await this.syncing.catch(() => {});
  }

  /** An early fdatasync, not awaited here: finish() waits for it; a failure fails the sink. */
  private syncInBackground(): void {
    this.unsynced = 0;
    this.syncing = datasync(this.handle.fd)
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
