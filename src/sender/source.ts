/**
 * Reading local files: checking a path given to send, reading a small file
 * whole, and the buffers a large one is read into. A small pool of buffers
 * is reused: each has room for the frame header in front of the payload and
 * the end marker after it, so a chunk is read, hashed and written to the
 * socket without a copy or an allocation. A buffer returns to the pool once
 * the socket is done with it.
 */
import { closeSync, openSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { readExactly } from '../file-digest.js';
import { FRAME_OVERHEAD, HEADER_SIZE, MAX_DATA_BYTES, MAX_FILE_SIZE } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';

/** 1 MiB: measured flat from 256 KiB to 4 MiB, and 1.8x faster than 64 KiB (see README). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Buffers in flight per transfer: bounds memory at POOL_SIZE x chunk whatever the file size. */
const POOL_SIZE = 4;

export interface SourceFile {
  /** The path as given. */
  path: string;
  /** What the receiver is offered: the base name. */
  name: string;
  size: number;
  mode: number;
  mtimeMs: number;
}

/** Stats a path given on the command line; usage errors for what cannot be sent. */
export async function inspectSource(path: string): Promise<SourceFile> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FerryError('ERR_NOT_FOUND', `${path}: no such file`);
    throw cannotRead(path, err);
  }
  if (info.isDirectory()) throw new FerryError('ERR_USAGE', `${path}: is a folder`);
  if (!info.isFile()) throw new FerryError('ERR_USAGE', `${path}: not a regular file`);
  if (info.size > MAX_FILE_SIZE) throw new FerryError('ERR_USAGE', `${path}: too large`);
  // Open now so that an unreadable file is a usage error before anything is sent.
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw cannotRead(path, err);
  }
  await handle.close();
  return { path, name: basename(path), size: info.size, mode: info.mode & 0o777, mtimeMs: info.mtimeMs };
}

/**
 * The one wording of a file that cannot be opened or read. `where` is a local
 * path in what only this side prints, and the offered name in what may reach
 * the peer (an ABORT).
 */
export function cannotRead(where: string, err: unknown): FerryError {
  return new FerryError('ERR_UNREADABLE', `${where}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
}

/**
 * A whole small file (at most MAX_EAGER_BYTES), read with blocking calls on
 * purpose: open, read and close of a cached 4 KiB file take about 10 us
 * this way, against about 250 us of promise and FileHandle machinery per
 * file measured with fs/promises (10,000 files: 2.9 s of sender CPU, most
 * of it in openFileHandle). ERR_SOURCE_CHANGED if the file is no longer the
 * size it had when walked. A failure is a value: it is this file's result,
 * only this side sees it, and the session goes on.
 */
export function readSmall(file: SourceFile): Buffer | FerryError {
  let fd: number | undefined;
  try {
    fd = openSync(file.path, 'r');
    return readExactly(fd, file.size) ?? new FerryError('ERR_SOURCE_CHANGED', `${file.path}: file changed size while being sent`);
  } catch (err) {
    return cannotRead(file.path, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A fixed set of frame buffers, handed out and given back. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private waiters: Array<(buffer: Buffer) => void> = [];
  /** Payload capacity of each buffer. */
  readonly chunkSize: number;

  constructor(chunkSize: number, count = POOL_SIZE) {
    this.chunkSize = chunkSize;
    if (!(chunkSize >= 1 && chunkSize <= MAX_DATA_BYTES)) throw new RangeError(`chunk size ${chunkSize} out of range`);
    for (let i = 0; i < count; i++) this.free.push(Buffer.allocUnsafe(chunkSize + FRAME_OVERHEAD));
  }

  acquire(): Promise<Buffer> {
    const buffer = this.free.pop();
    if (buffer) return Promise.resolve(buffer);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * acquire(), given up when `failed` rejects first: a failed connection may
   * never call back for the buffers it holds. A buffer that comes after all
   * goes back to the pool; otherwise each failure would lose one for good,
   * and with retries the pool (shared by the attempts) could run dry.
   */
  async acquireUnless(failed: Promise<never>): Promise<Buffer> {
    const acquiring = this.acquire();
    try {
      return await Promise.race([acquiring, failed]);
    } catch (err) {
      void acquiring.then((buffer) => this.release(buffer));
      throw err;
    }
  }

  release(buffer: Buffer): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(buffer);
    else this.free.push(buffer);
  }
}

/** Reads `length` bytes at `position` into the payload area of a pool buffer. */
export async function readChunk(handle: FileHandle, buffer: Buffer, length: number, position: number): Promise<number> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, HEADER_SIZE + filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}
