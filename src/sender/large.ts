/**
 * A file over the eager size: offered alone, and streamed only once the
 * receiver accepts it, from where the receiver's partial copy of a cut
 * transfer ends when that copy is a prefix of this file (resume).
 *
 * A failure once the file is accepted ends the session, and its message
 * travels to the receiver in an ABORT: it names the file as offered, never
 * by its local path (which would tell the peer about this machine).
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { CompressedChunks } from '../compress.js';
import type { SenderConnection } from '../connection.js';
import { progressReporter } from '../events.js';
import { digestOf, hashFilePrefix, type HashAlgorithm, type Hasher } from '../hash.js';
import { FrameType, HEADER_SIZE, OfferFlag } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';
import { printableName } from '../printable.js';
import { paceWrite, type RateLimiter } from '../rate-limit.js';
import { encodeEnd, encodeOffer, encodeResume, frameDataInPlace, payloadOf, type AcceptFrame } from '../protocol/messages.js';
import type { SendContext } from './attempt.js';
import { finish, offer } from './offer.js';
import { judge, refused, type FileResult } from './results.js';
import { BufferPool, cannotRead, readChunk } from './source.js';
import type { FileEntry } from './walk.js';

export interface LargeFile {
  conn: SenderConnection;
  entry: FileEntry;
  algorithm: HashAlgorithm;
  ctx: SendContext;
  /** --compress, and the receiver can decompress. */
  compress: boolean;
}

/** Offers the file and, if accepted, streams it and waits for the verdict. */
export async function sendLarge({ conn, entry, algorithm, ctx, compress }: LargeFile): Promise<FileResult> {
  const started = performance.now();
  const offerFrame = encodeOffer({ ...entry, algorithm: algorithm.id, flags: ctx.update ? OfferFlag.Replace : 0 });
  const reply = await offer(conn, offerFrame);
  if (reply.type === FrameType.Refuse) return refused(entry, reply, started);
  const shown = printableName(entry.name);
  const pool = (ctx.pool ??= new BufferPool(ctx.chunkSize));
  let handle: FileHandle;
  try {
    handle = await open(entry.path, 'r');
  } catch (err) {
    // Accepted but unreadable now: the receiver must hear of it; the session cannot go on mid-file.
    throw cannotRead(shown, err);
  }
  try {
    const before = await handle.stat();
    const { hasher, from } = await resumePoint({ conn, handle, reply, algorithm, size: entry.size, pool, shown });
    ctx.emit({ event: 'start', side: 'send', name: entry.name, bytes: entry.size, peer: conn.peer, resumedFrom: from > 0 ? from : undefined });
    const progress = progressReporter(ctx.emit, { side: 'send', name: entry.name, bytes: entry.size, peer: conn.peer });
    await streamFile({ conn, handle, size: entry.size, shown, hasher, from, pool, progress, limiter: ctx.limiter, compress });
    const after = await handle.stat();
    // ctime too: a rewrite that puts the mtime back (cp -p, rsync -t, tar) cannot reset it.
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.ctimeMs !== before.ctimeMs || before.size !== entry.size) {
      throw new FerryError('ERR_SOURCE_CHANGED', `${shown}: file changed while being sent`);
    }
    const digest = hasher.digest();
    const verdict = await finish(conn, encodeEnd(digest, digestOf(algorithm, payloadOf(offerFrame))), entry.size);
    return judge({ entry, algorithm, digest, verdict, started, transferred: entry.size - from, resumedFrom: from });
  } finally {
    await handle.close();
  }
}

/**
 * Where DATA starts, answered with RESUME when the ACCEPT carries an offset:
 * the receiver's prefix is kept only if it is ours. The hasher returned has
 * taken in the bytes before `from`.
 */
async function resumePoint(at: {
  conn: SenderConnection;
  handle: FileHandle;
  reply: AcceptFrame;
  algorithm: HashAlgorithm;
  size: number;
  pool: BufferPool;
  shown: string;
}): Promise<{ hasher: Hasher; from: number }> {
  const { conn, handle, reply, algorithm, size, pool, shown } = at;
  const hasher = algorithm.create();
  if (reply.offset === 0) return { hasher, from: 0 };
  if (reply.offset <= size && reply.prefixDigest.length === algorithm.digestLength) {
    await conn.local(() => hashRange({ handle, hasher, length: reply.offset, pool, shown }));
    if (hasher.digest().equals(reply.prefixDigest)) {
      await conn.write(encodeResume(reply.offset));
      return { hasher, from: reply.offset };
    }
  }
  await conn.write(encodeResume(0));
  return { hasher: algorithm.create(), from: 0 };
}

/** Feeds the file's first `length` bytes to `hasher`. */
async function hashRange({ handle, hasher, length, pool, shown }: { handle: FileHandle; hasher: Hasher; length: number; pool: BufferPool; shown: string }): Promise<void> {
  const buffer = await pool.acquire();
  try {
    const payload = buffer.subarray(HEADER_SIZE, HEADER_SIZE + pool.chunkSize);
    if ((await hashFilePrefix(handle, hasher, length, payload)) < length) throw new FerryError('ERR_SOURCE_CHANGED', `${shown}: file shrank while being read`);
  } finally {
    pool.release(buffer);
  }
}

interface Streaming {
  conn: SenderConnection;
  handle: FileHandle;
  size: number;
  /** The offered name, as errors show it. */
  shown: string;
  hasher: Hasher;
  from: number;
  pool: BufferPool;
  progress: (done: number) => void;
  limiter: RateLimiter | undefined;
}

/** Streams the file's bytes from `from` as DATA (or, with `compress`, ZDATA) frames, hashing them. */
async function streamFile(job: Streaming & { compress: boolean }): Promise<void> {
  const { conn } = job;
  const chunks = job.compress ? new CompressedChunks(conn, frameDataInPlace) : null;
  try {
    await streamChunks({ ...job, chunks });
    await chunks?.flush();
  } catch (err) {
    chunks?.abandon();
    throw err;
  }
  await conn.drained();
}

/** The read loop of streamFile(): each chunk hashed, then framed as DATA in place, or handed to `chunks` (--compress). */
async function streamChunks(job: Streaming & { chunks: CompressedChunks | null }): Promise<void> {
  const { conn, handle, size, shown, hasher, from, pool, progress, limiter, chunks } = job;
  let sent = from;
  let written = from;
  progress(written);
  while (sent < size) {
    const buffer = await pool.acquireUnless(conn.failed);
    if (conn.error) {
      pool.release(buffer);
      throw conn.error;
    }
    const want = Math.min(pool.chunkSize, size - sent);
    try {
      await paceWrite(limiter, want, conn.failed);
    } catch (err) {
      pool.release(buffer);
      throw err;
    }
    const got = await readChunk(handle, buffer, want, sent);
    if (got < want) {
      pool.release(buffer);
      throw new FerryError('ERR_SOURCE_CHANGED', `${shown}: file shrank while being sent`);
    }
    hasher.update(buffer.subarray(HEADER_SIZE, HEADER_SIZE + got));
    sent += got;
    const done = (): void => {
      // Progress counts the file's bytes, compressed or not.
      written += got;
      progress(written);
      pool.release(buffer);
    };
    if (chunks) await chunks.push(buffer, got, done);
    else conn.writeThen(frameDataInPlace(buffer, got), done);
  }
}
