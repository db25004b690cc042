/**
 * Compression for slow links (send --compress, docs/protocol.md, section
 * 5.6.1): one home for the codec, the rule for when a chunk is worth
 * sending compressed, and the bounded decode the receiver relies on.
 *
 * The codec is brotli at quality 1, each chunk a complete stream of its own
 * (a ZDATA frame). Measured on this project's 2-core machine with 1 MiB
 * chunks of JavaScript/TypeScript/Markdown text and of random bytes:
 * brotli q1 compressed text at ~400 MiB/s to 22% of its size, raw deflate
 * level 1 at ~200 MiB/s to 24%; on random bytes brotli q1 gives up at
 * ~3,400 MiB/s and deflate grinds at ~65 MiB/s whatever its level. So the
 * choice is made per chunk: trying every chunk costs about nothing on data
 * that does not compress, and a file that mixes both (an archive, a disk
 * image) gets each part right. Independent chunks lose almost nothing:
 * 24.4% per 1 MiB chunk against 24.3% for one deflate stream of 32 MiB.
 * Over a 100 mbit link (tc tbf, two network namespaces), deciding per file
 * on the first chunk instead was no faster on 64 MiB of random bytes
 * (5.92 s either way, 0.08 s less CPU), and a file of 16 MiB random then
 * 16 MiB text took 2.98 s instead of 1.95 s, all of it sent plain.
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompressSync, constants } from 'node:zlib';
import { END_MARKER, FrameType, HEADER_SIZE, MAX_DATA_BYTES } from './protocol/constants.js';
import { FerryError, type ErrorCode } from './protocol/errors.js';
import { writeHeader } from './protocol/messages.js';

const compressAsync = promisify(brotliCompress);

/** Quality 1: text shrinks to about a quarter at hundreds of MiB/s, and random data is recognised at once. */
const OPTIONS = {
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 1,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC,
  },
};

/**
 * A chunk goes compressed only if that saves at least 1/16 of it: below
 * that, the receiver's decoding costs more than the link time saved, and
 * data that does not compress goes as DATA, byte for byte as without
 * --compress.
 */
export function shrinksEnough(raw: number, compressed: number): boolean {
  return compressed <= raw - raw / 16;
}

/**
 * The ZDATA payload for `chunk`, or null when it should go as DATA. Runs in
 * the thread pool (zlib's async API): the event loop keeps writing frames
 * meanwhile.
 */
export async function compressChunk(chunk: Buffer): Promise<Buffer | null> {
  if (chunk.length === 0) return null;
  // Output space for the whole chunk at once: with zlib's default 16 KiB steps, 1 MiB of random
  // bytes took 64 round trips and cost 5x the CPU (197 ms against 38 ms for 64 MiB, measured here).
  const compressed = await compressAsync(chunk, { ...OPTIONS, chunkSize: Math.max(64, chunk.length + 1024) });
  return shrinksEnough(chunk.length, compressed.length) && compressed.length <= MAX_DATA_BYTES ? compressed : null;
}

/** A ZDATA frame as [header, payload, end marker]: written under cork, the payload never copied. */
export function zdataFrame(payload: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(header, 0, FrameType.ZData, payload.length);
  return [header, payload, Buffer.of(END_MARKER)];
}

/**
 * Decodes one ZDATA payload, never to more than `room` bytes (what the
 * file may still take), nor more than a DATA frame could carry: zlib stops
 * at `maxOutputLength`, so a bomb costs at most that much memory. Too much
 * output is `tooMuch` when `room` is what stopped it (the file would grow
 * past its offer), else ERR_MALFORMED_PAYLOAD; a payload that is not one
 * whole brotli stream, or decodes to nothing, is ERR_MALFORMED_PAYLOAD.
 */
export function decompressChunk(payload: Buffer, room: number, tooMuch: ErrorCode = 'ERR_SIZE_MISMATCH'): Buffer {
  const bound = Math.min(room, MAX_DATA_BYTES);
  if (bound < 1) throw new FerryError(tooMuch, 'a ZDATA frame after all the bytes offered');
  let out: Buffer;
  try {
    out = brotliDecompressSync(payload, { maxOutputLength: bound });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw bound === room
        ? new FerryError(tooMuch, `a ZDATA frame decodes to more than the ${room} bytes the file may still take`)
        : new FerryError('ERR_MALFORMED_PAYLOAD', `a ZDATA frame decodes to more than ${MAX_DATA_BYTES} bytes`);
    }
    throw new FerryError('ERR_MALFORMED_PAYLOAD', 'malformed ZDATA frame: not a brotli stream');
  }
  if (out.length === 0) throw new FerryError('ERR_MALFORMED_PAYLOAD', 'malformed ZDATA frame: no content');
  return out;
}

/** What CompressedChunks writes to: a Connection, seen from here without importing it. */
export interface FrameWriter {
  writeThen(bytes: Buffer, done: () => void): boolean;
  writePartsThen(parts: readonly Buffer[], done: () => void): boolean;
}

/** A chunk read into a pool buffer (payload at HEADER_SIZE, as frameDataInPlace() wants), on its way out. */
interface Pending {
  buffer: Buffer;
  length: number;
  compressed: Promise<Buffer | null>;
  /** Runs once the socket is done with the frame: the buffer may then go back to its pool. */
  done: () => void;
}

/**
 * The sender's side of --compress for a large file: chunks are compressed
 * in the thread pool, `depth` at a time, while earlier ones are written, and
 * go out in order, each as ZDATA or, when it does not shrink enough, as
 * DATA framed in place. A chunk's pool buffer is released only once its
 * frame is written, whichever it went as: the pool still bounds what is in
 * flight, so memory stays flat and the socket's backpressure still reaches
 * the reader.
 */
export class CompressedChunks {
  private readonly queue: Pending[] = [];

  constructor(
    private readonly out: FrameWriter,
    private readonly frameData: (buffer: Buffer, length: number) => Buffer,
    /** Two: both cores of a small machine compress while the event loop writes. */
    private readonly depth = 2,
  ) {}

  /** Queues a chunk; writes the oldest ones once more than `depth` are queued. */
  async push(buffer: Buffer, length: number, done: () => void): Promise<void> {
    const compressed = compressChunk(buffer.subarray(HEADER_SIZE, HEADER_SIZE + length));
    // Awaited in order by writeOldest(); until then a failure must not count as unhandled.
    compressed.catch(() => {});
    this.queue.push({ buffer, length, compressed, done });
    while (this.queue.length > this.depth) await this.writeOldest();
  }

  /** Writes everything queued. */
  async flush(): Promise<void> {
    while (this.queue.length > 0) await this.writeOldest();
  }

  /** The transfer failed: gives every queued buffer back once its compression is over, writing nothing. */
  abandon(): void {
    for (const pending of this.queue.splice(0)) void pending.compressed.finally(pending.done).catch(() => {});
  }

  private async writeOldest(): Promise<void> {
    const pending = this.queue[0]!;
    const compressed = await pending.compressed;
    this.queue.shift();
    try {
      if (compressed) this.out.writePartsThen(zdataFrame(compressed), pending.done);
      else this.out.writeThen(this.frameData(pending.buffer, pending.length), pending.done);
    } catch (err) {
      // A failed connection never calls back: the buffer goes back to its pool now.
      pending.done();
      throw err;
    }
  }
}
