/**
 * The small-file path: a file of at most MAX_EAGER_BYTES, or a folder, goes
 * as OFFER, DATA and END at once, with no round trip. Their VERDICTs come
 * back in offer order and are read a window behind: the window bounds what
 * a lost connection must send again.
 */
import { compressChunk } from '../compress.js';
import type { SenderConnection } from '../connection.js';
import { digestOf, type HashAlgorithm } from '../hash.js';
import { FrameType, MAX_EAGER_BYTES, OfferFlag } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';
import { encodeEnd, encodeFrame, encodeOffer, payloadOf } from '../protocol/messages.js';
import { paceWrite, type RateLimiter } from '../rate-limit.js';
import { failed, judge, type FileResult } from './results.js';
import { readSmall } from './source.js';
import type { DirectoryEntry, Entry, FileEntry } from './walk.js';

/**
 * Eager offers whose verdicts the sender may wait for at once (docs/protocol.md,
 * section 4): the receiver answers a batch at a time, after one flush for all
 * of it (group commit), so the window sets how many files share a flush.
 */
const WINDOW_FILES = 256;
const WINDOW_BYTES = 16 * 1024 * 1024;

export type EagerEntry = FileEntry | DirectoryEntry;

export function isEager(entry: Entry): entry is EagerEntry {
  return entry.kind === 'directory' || (entry.kind === 'file' && entry.size <= MAX_EAGER_BYTES);
}

/** An eager offer on the wire, waiting for its verdict. */
interface InFlight {
  entry: EagerEntry;
  digest: Buffer;
  bytes: number;
  started: number;
}

/** The eager offers of one connection that await their VERDICTs, oldest first. */
export class EagerWindow {
  private readonly conn: SenderConnection;
  private readonly algorithm: HashAlgorithm;
  private readonly record: (entry: Entry, result: FileResult) => void;
  private readonly limiter: RateLimiter | undefined;
  private readonly inFlight: InFlight[] = [];
  private bytes = 0;

  /** OfferFlag.Replace on every file (--update), else 0. */
  private readonly replace: number;
  /** --compress, and the receiver can decompress. */
  private readonly compress: boolean;

  constructor(
    conn: SenderConnection,
    algorithm: HashAlgorithm,
    record: (entry: Entry, result: FileResult) => void,
    options: { limiter?: RateLimiter | undefined; update?: boolean; compress?: boolean } = {},
  ) {
    this.replace = options.update ? OfferFlag.Replace : 0;
    this.compress = options.compress ?? false;
    this.conn = conn;
    this.algorithm = algorithm;
    this.record = record;
    this.limiter = options.limiter;
  }

  /** The oldest offer still without a verdict: the one a failure of the session is reported against. */
  get oldest(): EagerEntry | undefined {
    return this.inFlight[0]?.entry;
  }

  /** Sends `entry` eagerly; waits for the oldest verdicts while the window is full. */
  async send(entry: EagerEntry): Promise<void> {
    const started = performance.now();
    let content: Buffer = Buffer.alloc(0);
    if (entry.kind === 'file') {
      const read = readSmall(entry);
      if (read instanceof FerryError) {
        this.record(entry, failed(entry, read, started));
        return;
      }
      content = read;
    }
    const digest = entry.kind === 'file' ? digestOf(this.algorithm, content) : Buffer.alloc(0);
    // Before batch(), like the pacing below: the thread pool's round trip must not hold back corked writes.
    const compressed = this.compress ? await compressChunk(content) : null;
    // Before batch(): a wait here must not hold back the writes already corked.
    if (this.limiter) await paceWrite(this.limiter, content.length, this.conn.failed);
    this.conn.batch();
    // A VERDICT is due from now on: it may come while the next offers are written.
    this.conn.enter('EAGER');
    await this.conn.write(eagerFrames({ entry, content, compressed, algorithm: this.algorithm, digest, replace: this.replace }));
    this.inFlight.push({ entry, digest, bytes: content.length, started });
    this.bytes += content.length;
    while (this.inFlight.length >= WINDOW_FILES || this.bytes >= WINDOW_BYTES) await this.settle();
  }

  /** Reads every verdict still due: before a non-eager OFFER (so that its answer is the next frame), and before BYE. */
  async settleAll(): Promise<void> {
    while (this.inFlight.length > 0) await this.settle();
  }

  private async settle(): Promise<void> {
    const verdict = await this.conn.expect('EAGER');
    const sent = this.inFlight.shift()!;
    // With none left due, a VERDICT would answer nothing.
    this.conn.enter(this.inFlight.length > 0 ? 'EAGER' : 'IDLE');
    this.bytes -= sent.bytes;
    this.record(sent.entry, judge({ ...sent, algorithm: this.algorithm, verdict, transferred: sent.bytes, resumedFrom: 0 }));
  }
}

/** OFFER, DATA (or ZDATA, when `compressed`) and END of an eager file (or the OFFER of a folder), as one write. */
function eagerFrames(frames: { entry: EagerEntry; content: Buffer; compressed: Buffer | null; algorithm: HashAlgorithm; digest: Buffer; replace: number }): Buffer {
  const { entry, content, compressed, algorithm, digest, replace } = frames;
  const base = { name: entry.name, mtimeMs: entry.mtimeMs, mode: entry.mode, algorithm: algorithm.id };
  if (entry.kind === 'directory') return encodeOffer({ ...base, size: 0, flags: OfferFlag.Directory });
  const offer = encodeOffer({ ...base, size: content.length, flags: OfferFlag.Eager | replace });
  const end = encodeEnd(digest, digestOf(algorithm, payloadOf(offer)));
  if (content.length === 0) return Buffer.concat([offer, end]);
  const data = compressed ? encodeFrame(FrameType.ZData, compressed) : encodeFrame(FrameType.Data, content);
  return Buffer.concat([offer, data, end]);
}
