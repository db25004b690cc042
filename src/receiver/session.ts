/**
 * One sender's session on the receiving side: HELLO, then OFFER after OFFER
 * until BYE. Files are written to hidden temp files and named only when the
 * sender's digest equals ours.
 *
 * Two kinds of offer (docs/protocol.md, section 4):
 * - eager (small files, directories): the answer is a VERDICT alone. Small
 *   files are held in memory, checked, then written and named in the
 *   background while the next offers are read; verdicts still go out in
 *   order. A tree of small files costs no round trip per file.
 * - accepted (larger files, streams): OFFER, ACCEPT (with the offset of a
 *   kept partial file and the digest of what it holds), DATA, END, VERDICT.
 */
import { chmod, statfs, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { ReceiverConnection } from '../connection.js';
import { progressReporter, type EventListener } from '../events.js';
import { SUPPORTED_ALGORITHMS, algorithmById, batchedHasher, digestOf, type HashAlgorithm, type Hasher } from '../hash.js';
import { FrameType, OfferFlag } from '../protocol/constants.js';
import { FerryError, exitCodeOf, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeAccept, encodeHello, encodeHeartbeat, encodeRefuse, encodeVerdict, type OfferFrame } from '../protocol/messages.js';
import { printableName } from '../printable.js';
import { validatePath } from '../protocol/names.js';
import { TargetTree } from './paths.js';
import { FileSink, commitSmall, pathExists, type Sink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';

export interface SessionContext {
  /** The target folder, as the user gave it (paths in events are built from it). */
  dir: string;
  overwrite: boolean;
  fsync: boolean;
  /** Largest file accepted, in bytes; undefined: limited by free space only. */
  maxSize: number | undefined;
  /** Paths being received right now, across sessions: a second sender of the same path is told ERR_BUSY. */
  inFlight: Set<string>;
  /** --stdout: the one file goes there instead of into `dir`. */
  stdout: { stream: Writable; taken: boolean } | undefined;
  emit: EventListener;
  /** Called once the peer proved to speak ferry (a valid HELLO). */
  onHandshake(): void;
}

/** Eager files checked and waiting to be written: bounds memory (64 KiB each at most). */
const MAX_PENDING_REPLIES = 64;

/** Errors after which a partial file is kept for the next offer of the same path to resume. */
const RESUMABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_CONNECTION_LOST',
  'ERR_TRUNCATED',
  'ERR_TIMEOUT',
  'ERR_INTERRUPTED',
  'ERR_SHUTDOWN',
  'ERR_SIGINT',
  'ERR_SIGTERM',
]);

interface Reply {
  code: ErrorCode;
  digest: Buffer;
  message: string;
  /** Reported when the verdict goes out (before it: the file is saved even if the sender never hears so), so events keep offer order. */
  report?: () => void;
}

/** VERDICTs of eager offers, written in offer order however their disk work interleaves. */
class Replies {
  private chain: Promise<void> = Promise.resolve();
  /** One promise per verdict not yet written, oldest first (they settle in this order). */
  private readonly unwritten: Promise<void>[] = [];
  worst = 0;

  constructor(private readonly conn: ReceiverConnection) {}

  push(outcome: Promise<Reply>): void {
    const written = this.chain.then(async () => {
      const reply = await outcome;
      reply.report?.();
      this.worst = Math.max(this.worst, exitCodeOf(reply.code));
      this.conn.batch();
      await this.conn.write(encodeVerdict(reply.code, reply.digest, reply.message));
    });
    this.chain = written;
    this.unwritten.push(written);
    // Failures surface in room() and flush(); until then, no unhandled rejection.
    written.then(
      () => this.unwritten.shift(),
      () => {},
    );
  }

  /**
   * Waits while MAX_PENDING_REPLIES verdicts are unwritten, for the oldest
   * only: the next offers are read while the rest of the disk work goes on,
   * instead of stopping until the whole window is out.
   */
  async room(): Promise<void> {
    while (this.unwritten.length >= MAX_PENDING_REPLIES) await this.unwritten[0];
  }

  /** Waits until every queued verdict is written. */
  flush(): Promise<void> {
    return this.chain;
  }
}

/** Runs the session to its end. Resolves with the worst exit code of its files, never rejects. */
export async function runSession(conn: ReceiverConnection, ctx: SessionContext): Promise<number> {
  let worst = 0;
  let current: string | undefined;
  const replies = new Replies(conn);
  const tree = new TargetTree(ctx.dir);
  try {
    const hello = await conn.expect('HANDSHAKE');
    if (hello.type === FrameType.Pake) {
      // Never falls back: a sender with a code gets no plaintext session.
      throw new FerryError('ERR_INSECURE_MISMATCH', 'this receiver runs --insecure, without a code; run the sender with --insecure too');
    }
    ctx.onHandshake();
    await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)));
    for (;;) {
      await replies.room();
      const frame = await conn.expect('IDLE');
      if (frame.type === FrameType.Bye) break;
      if ((frame.flags & (OfferFlag.Eager | OfferFlag.Directory)) !== 0) {
        await receiveEager(conn, frame, ctx, tree, replies);
        continue;
      }
      // ACCEPT or REFUSE must follow the verdicts already queued.
      await replies.flush();
      const code = await receiveFile(conn, frame, ctx, tree, (name) => (current = name));
      // That file is settled: a later failure is the session's, not the file's.
      current = undefined;
      worst = Math.max(worst, exitCodeOf(code));
    }
    await replies.flush();
    await conn.end();
    return Math.max(worst, replies.worst);
  } catch (caught) {
    const err = toFerryError(caught);
    if (!err.remote) conn.abort(err);
    else conn.destroy();
    ctx.emit({
      event: 'error',
      code: err.code,
      message: current ? `${printableName(current)}: ${err.message}` : err.message,
      exitCode: err.exitCode,
      peer: conn.peer,
      ...(current ? { name: current } : {}),
    });
    return Math.max(worst, replies.worst, err.exitCode);
  }
}

interface Checked {
  name: string;
  parts: string[];
  algorithm: HashAlgorithm;
}

/**
 * The checks every offer passes before any byte is kept: a safe relative
 * path, a known hash, within --max-size, not arriving from elsewhere, and
 * what --stdout allows. Returns the refusal, if any.
 */
function check(offer: OfferFrame, ctx: SessionContext): Checked | FerryError {
  let parts: string[];
  try {
    parts = validatePath(offer.name);
  } catch (err) {
    return toFerryError(err);
  }
  const name = parts.join('/');
  const algorithm = algorithmById(offer.algorithm);
  if (!algorithm) return new FerryError('ERR_UNSUPPORTED_HASH', `unknown hash algorithm id ${offer.algorithm}`);
  if (ctx.maxSize !== undefined && offer.size > ctx.maxSize) {
    return new FerryError('ERR_TOO_LARGE', `${offer.size} bytes is over this receiver's limit of ${ctx.maxSize}`);
  }
  if (ctx.stdout && ((offer.flags & OfferFlag.Directory) !== 0 || ctx.stdout.taken)) {
    return new FerryError('ERR_USAGE', 'this receiver writes one file to its standard output, and has it');
  }
  if (ctx.inFlight.has(name)) return new FerryError('ERR_BUSY', 'a file of that name is arriving over another connection');
  return { name, parts, algorithm };
}

function refusalEvent(ctx: SessionContext, conn: ReceiverConnection, err: FerryError, name: string | undefined): void {
  ctx.emit({
    event: 'error',
    code: err.code,
    message: `refused ${name === undefined ? 'a file' : printableName(name)} from ${conn.peer}: ${err.message}`,
    exitCode: err.exitCode,
    peer: conn.peer,
    ...(name === undefined ? {} : { name }),
  });
}

/**
 * An eager file (DATA and END follow at once) or a directory: read to the
 * END now, check, and queue the disk work and the VERDICT. Returns once the
 * offer's frames are consumed; a protocol violation throws.
 */
async function receiveEager(conn: ReceiverConnection, offer: OfferFrame, ctx: SessionContext, tree: TargetTree, replies: Replies): Promise<void> {
  const checked = check(offer, ctx);
  const nameOf = (): string | undefined => ('name' in checked ? checked.name : undefined);
  const refused = checked instanceof FerryError ? checked : null;
  const noDigest = Buffer.alloc(0);

  if ((offer.flags & OfferFlag.Directory) !== 0) {
    if (refused) {
      replies.push(Promise.resolve({ code: refused.code, digest: noDigest, message: refused.message, report: () => refusalEvent(ctx, conn, refused, nameOf()) }));
      return;
    }
    const { name, parts } = checked as Checked;
    // Its contents came first (the sender walks depth first): their disk work must be done before the mtime is set.
    await replies.flush();
    replies.push(makeDirectory(ctx, conn, tree, name, parts, offer));
    return;
  }

  const algorithm = refused ? undefined : (checked as Checked).algorithm;
  // At most MAX_EAGER_BYTES, held until END: hashed there in one call.
  let pieces: Buffer[] = [];
  let received = 0;
  conn.setDataHandler((piece) => {
    if (received + piece.length > offer.size) throw new FerryError('ERR_SIZE_MISMATCH', `more than the ${offer.size} bytes offered`);
    received += piece.length;
    if (algorithm) pieces.push(piece);
  });
  let end;
  try {
    end = await conn.expect('RECEIVING');
  } finally {
    conn.setDataHandler(null);
  }
  if (refused || !algorithm) {
    const err = refused ?? new FerryError('ERR_TRANSFER', 'refused');
    replies.push(Promise.resolve({ code: err.code, digest: noDigest, message: err.message, report: () => refusalEvent(ctx, conn, err, nameOf()) }));
    return;
  }
  const { name, parts } = checked as Checked;
  const content = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  pieces = [content];
  const digest = digestOf(algorithm, content);
  const verdict = verify(algorithm, offer, end.digests, digest, received, offer.size);
  if (verdict) {
    replies.push(Promise.resolve({ code: verdict.code, digest, message: verdict.message, report: () => failureEvent(ctx, conn, verdict, name) }));
    return;
  }
  ctx.inFlight.add(name);
  if (ctx.stdout) ctx.stdout.taken = true;
  const started = performance.now();
  replies.push(
    (async (): Promise<Reply> => {
      try {
        let path = '-';
        if (ctx.stdout) {
          const sink = new StdoutSink(ctx.stdout.stream);
          for (const piece of pieces) sink.write(piece);
          await sink.commit();
        } else {
          const parent = await tree.parentOf(parts);
          path = join(parent, parts[parts.length - 1]!);
          await commitSmall(parent, path, pieces, { mode: offer.mode, mtimeMs: offer.mtimeMs, overwrite: ctx.overwrite, fsync: ctx.fsync });
        }
        const seconds = (performance.now() - started) / 1000;
        return { code: 'OK', digest, message: '', report: () => receivedEvent(ctx, conn, { name, path, bytes: received, algorithm, digest, seconds, resumedFrom: 0 }) };
      } catch (caught) {
        const err = toFerryError(caught, 'ERR_IO');
        const report = (): void => (err.exitCode === 4 ? refusalEvent(ctx, conn, err, name) : failureEvent(ctx, conn, err, name));
        return { code: err.code, digest, message: err.message, report };
      } finally {
        ctx.inFlight.delete(name);
      }
    })(),
  );
}

async function makeDirectory(ctx: SessionContext, conn: ReceiverConnection, tree: TargetTree, name: string, parts: string[], offer: OfferFrame): Promise<Reply> {
  const started = performance.now();
  try {
    const path = await tree.directory(parts);
    // A folder that was there before keeps its own mode and times unless --overwrite.
    if (tree.created.has(name) || ctx.overwrite) await applyMeta(path, offer);
    const seconds = (performance.now() - started) / 1000;
    return {
      code: 'OK',
      digest: Buffer.alloc(0),
      message: '',
      report: () => ctx.emit({ event: 'received', name, path, bytes: 0, directory: true, resumedFrom: 0, seconds, peer: conn.peer }),
    };
  } catch (caught) {
    const err = toFerryError(caught, 'ERR_IO');
    return { code: err.code, digest: Buffer.alloc(0), message: err.message, report: () => failureEvent(ctx, conn, err, name) };
  }
}

async function applyMeta(path: string, offer: OfferFrame): Promise<void> {
  await chmod(path, offer.mode & 0o777);
  const mtime = offer.mtimeMs / 1000;
  await utimes(path, mtime, mtime);
}

/** Compares what arrived with END: null when the file is verified. */
function verify(algorithm: HashAlgorithm, offer: OfferFrame, digests: Buffer, digest: Buffer, received: number, expected: number | undefined): FerryError | null {
  const h = algorithm.digestLength;
  if (digests.length !== 2 * h) {
    throw new FerryError('ERR_MALFORMED_PAYLOAD', `END carries ${digests.length} bytes, two ${algorithm.name} digests take ${2 * h}`);
  }
  if (expected !== undefined && received !== expected) return new FerryError('ERR_SIZE_MISMATCH', `${received} of ${expected} bytes arrived before END`);
  if (!digest.equals(digests.subarray(0, h))) return new FerryError('ERR_HASH_MISMATCH', `${algorithm.name} digest mismatch: the data was altered in transit`);
  if (!digestOf(algorithm, offer.payload).equals(digests.subarray(h))) {
    return new FerryError('ERR_HASH_MISMATCH', 'the offer (name, size, mode or mtime) was altered in transit');
  }
  return null;
}

function failureEvent(ctx: SessionContext, conn: ReceiverConnection, err: FerryError, name: string): void {
  ctx.emit({
    event: 'error',
    code: err.code,
    message: `${printableName(name)} from ${conn.peer}: ${err.message}`,
    exitCode: err.exitCode,
    name,
    peer: conn.peer,
  });
}

function receivedEvent(
  ctx: SessionContext,
  conn: ReceiverConnection,
  f: { name: string; path: string; bytes: number; algorithm: HashAlgorithm; digest: Buffer; seconds: number; resumedFrom: number },
): void {
  ctx.emit({
    event: 'received',
    name: f.name,
    path: f.path,
    bytes: f.bytes,
    hash: { algorithm: f.algorithm.name, digest: f.digest.toString('hex') },
    seconds: f.seconds,
    resumedFrom: f.resumedFrom,
    peer: conn.peer,
  });
}

/**
 * Answers one accepted-kind OFFER: a file over the eager size, or a stream.
 * Refusals and verdicts keep the session going and return their code;
 * protocol and I/O failures throw and end the session. A file cut off by a
 * lost connection keeps its partial file for the next offer to resume.
 */
async function receiveFile(
  conn: ReceiverConnection,
  offer: OfferFrame,
  ctx: SessionContext,
  tree: TargetTree,
  naming: (name: string | undefined) => void,
): Promise<ErrorCode> {
  const refuse = async (err: FerryError, name?: string): Promise<ErrorCode> => {
    await conn.write(encodeRefuse(err.code, err.message));
    refusalEvent(ctx, conn, err, name);
    return err.code;
  };
  const checked = check(offer, ctx);
  if (checked instanceof FerryError) return refuse(checked);
  const { name, parts, algorithm } = checked;
  const stream = (offer.flags & OfferFlag.Stream) !== 0;
  let parent: string | undefined;
  let finalPath = '-';
  if (!ctx.stdout) {
    try {
      parent = await conn.local(() => tree.parentOf(parts));
    } catch (err) {
      return refuse(toFerryError(err, 'ERR_IO'), name);
    }
    finalPath = join(parent, parts[parts.length - 1]!);
    if (!ctx.overwrite && (await pathExists(finalPath))) {
      return refuse(new FerryError('ERR_EXISTS', 'a file of that name exists (the receiver can allow --overwrite)'), name);
    }
    const free = stream ? undefined : await freeBytes(parent);
    if (free !== undefined && offer.size > free) {
      return refuse(new FerryError('ERR_TOO_LARGE', `${offer.size} bytes do not fit: ${free} bytes free`), name);
    }
  }
  // Checked again after the awaits above, right before taking the name.
  if (ctx.inFlight.has(name)) return refuse(new FerryError('ERR_BUSY', 'a file of that name is arriving over another connection'), name);
  ctx.inFlight.add(name);
  if (ctx.stdout) ctx.stdout.taken = true;
  naming(name);
  let sink: (Sink & Partial<Pick<FileSink, 'hashPrefix' | 'restart'>>) | undefined;
  let resumable = false;
  let stopHeartbeat = (): void => {};
  try {
    let offset = 0;
    try {
      if (ctx.stdout) {
        sink = new StdoutSink(ctx.stdout.stream);
      } else if (stream) {
        sink = await conn.local(() => FileSink.create(parent!, ctx.fsync));
      } else {
        const opened = await conn.local(() => FileSink.openPartial(parent!, name, ctx.fsync, offer.size));
        sink = opened.sink;
        offset = opened.offset;
        resumable = true;
      }
    } catch (err) {
      return await refuse(toFerryError(err), name);
    }
    const started = performance.now();
    let hasher: Hasher = batchedHasher(algorithm.create());
    if (offset > 0) await conn.local(() => sink!.hashPrefix!(hasher, offset));
    let received = offset;
    const progress = progressReporter(ctx.emit, { side: 'receive', name, bytes: offer.size, peer: conn.peer });
    const fileSink = sink;
    fileSink.onError = (err) => conn.abort(err);
    fileSink.onDrain = () => conn.resumeData();
    const limit = stream ? ctx.maxSize : offer.size;
    conn.setDataHandler((piece) => {
      if (limit !== undefined && received + piece.length > limit) {
        throw stream
          ? new FerryError('ERR_TOO_LARGE', `the stream went over this receiver's limit of ${limit} bytes`)
          : new FerryError('ERR_SIZE_MISMATCH', `more than the ${offer.size} bytes offered`);
      }
      received += piece.length;
      fileSink.write(piece);
      hasher.update(piece);
      progress(received);
      if (fileSink.full) conn.pauseData();
    });
    await conn.write(encodeAccept(offset, offset > 0 ? hasher.digest() : undefined));
    // Until the verdict the sender hears nothing else from us: on a slow link
    // its writes take long to drain, and a large fsync takes a while.
    stopHeartbeat = conn.heartbeat(() => encodeHeartbeat(received));
    if (offset > 0) {
      const resume = await conn.expect('ACCEPTED');
      if (resume.offset === 0) {
        // The sender's file starts differently: what we held was another file.
        await conn.local(() => fileSink.restart!());
        hasher = batchedHasher(algorithm.create());
        received = 0;
        offset = 0;
      } else if (resume.offset !== offset) {
        throw new FerryError('ERR_MALFORMED_PAYLOAD', `RESUME at ${resume.offset}, offered ${offset}`);
      }
    }
    ctx.emit({ event: 'start', side: 'receive', name, bytes: offer.size, peer: conn.peer, ...(offset > 0 ? { resumedFrom: offset } : {}) });
    progress(received);

    const end = await conn.expect('RECEIVING');
    conn.setDataHandler(null);
    await conn.local(() => fileSink.finish());
    const digest = hasher.digest();
    let verdict = verify(algorithm, offer, end.digests, digest, received, stream ? undefined : offer.size);
    resumable = false;
    if (verdict === null) {
      try {
        await conn.local(() => fileSink.commit(finalPath, { mode: offer.mode, mtimeMs: offer.mtimeMs, overwrite: ctx.overwrite }));
        sink = undefined;
        // Saved under its name: from here on, a failure is the session's, not this file's.
        naming(undefined);
      } catch (err) {
        verdict = toFerryError(err);
        if (verdict.code !== 'ERR_EXISTS') throw verdict;
      }
    }
    stopHeartbeat();
    if (verdict) {
      // Delete first: when the sender hears of the failure, nothing is left here.
      await sink?.discard();
      sink = undefined;
      await conn.write(encodeVerdict(verdict.code, digest, verdict.message));
      failureEvent(ctx, conn, verdict, name);
      return verdict.code;
    }
    // Reported before the verdict goes out: the file is saved even if the sender never hears so.
    receivedEvent(ctx, conn, { name, path: finalPath, bytes: received, algorithm, digest, seconds: (performance.now() - started) / 1000, resumedFrom: offset });
    await conn.write(encodeVerdict('OK', digest));
    return 'OK';
  } catch (err) {
    const code = toFerryError(err).code;
    if (sink && resumable && RESUMABLE.has(code)) {
      await sink.keep();
      sink = undefined;
    }
    throw err;
  } finally {
    stopHeartbeat();
    conn.setDataHandler(null);
    await sink?.discard();
    ctx.inFlight.delete(name);
  }
}

/** Free bytes for an unprivileged writer in `dir`, or undefined where unknown. */
async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}
