/**
 * The digest of a file already on disk: what a probe compares (the
 * receiver hashes the file it holds, the sender its own). Small files are
 * read with blocking calls, as the small-file paths do (about 10 us a file
 * against 250 us through fs/promises); larger ones off the event loop.
 */
import { closeSync, constants as fs, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { hashFilePrefix, type HashAlgorithm } from './hash.js';
import { MAX_EAGER_BYTES } from './protocol/constants.js';

/** A link is not followed; a FIFO swapped in after a check does not block the open. */
const OPEN_FLAGS = fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK;
/** Per file hashed at once: a receiver answers up to 64 probes concurrently (eager.ts), so 16 MiB at most. */
const READ_BUFFER = 256 * 1024;

/**
 * The digest of the regular file at `path`, when it is one of exactly
 * `size` bytes; undefined when it is missing, not a regular file (a link
 * included), of another size, or unreadable. Never throws.
 */
export async function digestOfFile(algorithm: HashAlgorithm, path: string, size: number): Promise<Buffer | undefined> {
  try {
    return size <= MAX_EAGER_BYTES ? smallDigest(algorithm, path, size) : await largeDigest(algorithm, path, size);
  } catch {
    return undefined;
  }
}

/**
 * The `size` bytes of the file open at `fd`, read with blocking calls, or
 * undefined when it holds another number of bytes: one byte more is asked
 * for, so a file that grew since it was measured is not taken for the one
 * that was.
 */
export function readExactly(fd: number, size: number): Buffer | undefined {
  const buffer = Buffer.allocUnsafe(size + 1);
  let got = 0;
  for (;;) {
    const n = readSync(fd, buffer, got, buffer.length - got, got);
    if (n === 0) break;
    got += n;
    if (got === buffer.length) break;
  }
  return got === size ? buffer.subarray(0, size) : undefined;
}

function smallDigest(algorithm: HashAlgorithm, path: string, size: number): Buffer | undefined {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.size !== size) return undefined;
    const content = readExactly(fd, size);
    return content ? algorithm.oneShot(content) : undefined;
  } finally {
    closeSync(fd);
  }
}

async function largeDigest(algorithm: HashAlgorithm, path: string, size: number): Promise<Buffer | undefined> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size !== size) return undefined;
    const hasher = algorithm.create();
    if ((await hashFilePrefix(handle, hasher, size, Buffer.allocUnsafe(READ_BUFFER))) !== size) return undefined;
    // A file that grew meanwhile is not the one asked about.
    const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, size);
    return bytesRead === 0 ? hasher.digest() : undefined;
  } finally {
    await handle.close();
  }
}
