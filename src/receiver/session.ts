/**
 * One sender's session on the receiving side: HELLO, then OFFER after OFFER
 * until BYE. Each accepted file streams into a FileSink and is committed
 * under its name only when the sender's digest equals ours.
 */
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Connection } from '../connection.js';
import { progressReporter, type EventListener } from '../events.js';
import { SUPPORTED_ALGORITHMS, algorithmById, digestOf } from '../hash.js';
import { FrameType } from '../protocol/constants.js';
import { FerryError, exitCodeOf, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeAccept, encodeHello, encodeProgress, encodeRefuse, encodeVerdict, type OfferFrame } from '../protocol/messages.js';
import { printableName, validateName } from '../protocol/names.js';
import { FileSink, pathExists } from './sink.js';

export interface SessionContext {
  /** The target folder, as the user gave it (paths in events are built from it). */
  dir: string;
  overwrite: boolean;
  fsync: boolean;
  /** Largest file accepted, in bytes; undefined: limited by free space only. */
  maxSize: number | undefined;
  /** Names being received right now, across sessions: a second sender of the same name is refused. */
  inFlight: Set<string>;
  emit: EventListener;
  /** Called once the peer proved to speak ferry (a valid HELLO). */
  onHandshake(): void;
}

/** Runs the session to its end. Resolves with the worst exit code of its files, never rejects. */
export async function runSession(conn: Connection, ctx: SessionContext): Promise<number> {
  let worst = 0;
  let current: string | undefined;
  try {
    await conn.expect([FrameType.Hello], 'HANDSHAKE');
    ctx.onHandshake();
    await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)));
    for (;;) {
      const frame = await conn.expect([FrameType.Offer, FrameType.Bye], 'IDLE');
      if (frame.type === FrameType.Bye) break;
      const code = await receiveFile(conn, frame, ctx, (name) => (current = name));
      // That file is settled: a later failure is the session's, not the file's.
      current = undefined;
      worst = Math.max(worst, exitCodeOf(code));
    }
    await conn.end();
    return worst;
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
    return Math.max(worst, err.exitCode);
  }
}

/**
 * Answers one OFFER. Refusals and verdicts keep the session going and return
 * their code; protocol and I/O failures throw and end the session.
 */
async function receiveFile(
  conn: Connection,
  offer: OfferFrame,
  ctx: SessionContext,
  naming: (name: string | undefined) => void,
): Promise<ErrorCode> {
  const refuse = async (err: FerryError, name?: string): Promise<ErrorCode> => {
    await conn.write(encodeRefuse(err.code, err.message));
    ctx.emit({
      event: 'error',
      code: err.code,
      message: `refused ${name === undefined ? 'a file' : printableName(name)} from ${conn.peer}: ${err.message}`,
      exitCode: err.exitCode,
      peer: conn.peer,
      ...(name === undefined ? {} : { name }),
    });
    return err.code;
  };

  let name: string;
  try {
    name = validateName(offer.name);
  } catch (err) {
    return refuse(toFerryError(err));
  }
  const algorithm = algorithmById(offer.algorithm);
  if (!algorithm) return refuse(new FerryError('ERR_UNSUPPORTED_HASH', `unknown hash algorithm id ${offer.algorithm}`), name);
  if (ctx.maxSize !== undefined && offer.size > ctx.maxSize) {
    return refuse(new FerryError('ERR_TOO_LARGE', `${offer.size} bytes is over this receiver's limit of ${ctx.maxSize}`), name);
  }
  const finalPath = join(ctx.dir, name);
  if (!ctx.overwrite && (await pathExists(finalPath))) {
    return refuse(new FerryError('ERR_EXISTS', 'a file of that name exists (the receiver can allow --overwrite)'), name);
  }
  const free = await freeBytes(ctx.dir);
  if (free !== undefined && offer.size > free) {
    return refuse(new FerryError('ERR_TOO_LARGE', `${offer.size} bytes do not fit: ${free} bytes free`), name);
  }
  // Checked after the awaits above, right before taking the name.
  if (ctx.inFlight.has(name)) return refuse(new FerryError('ERR_EXISTS', 'a file of that name is arriving from another sender'), name);
  ctx.inFlight.add(name);
  naming(name);
  let sink: FileSink | undefined;
  let stopHeartbeat = (): void => {};
  try {
    try {
      sink = await conn.local(() => FileSink.create(ctx.dir, ctx.fsync));
    } catch (err) {
      return await refuse(toFerryError(err), name);
    }
    const started = performance.now();
    const hasher = algorithm.create();
    let received = 0;
    const progress = progressReporter(ctx.emit, { side: 'receive', name, bytes: offer.size, peer: conn.peer });
    const fileSink = sink;
    fileSink.onError = (err) => conn.abort(err);
    fileSink.onDrain = () => conn.resumeData();
    conn.setDataHandler((piece) => {
      if (received + piece.length > offer.size) {
        throw new FerryError('ERR_SIZE_MISMATCH', `more than the ${offer.size} bytes offered`);
      }
      received += piece.length;
      fileSink.write(piece);
      hasher.update(piece);
      progress(received);
      if (fileSink.full) conn.pauseData();
    });
    await conn.write(encodeAccept(0));
    // Until the verdict the sender hears nothing else from us: on a slow link
    // its writes take long to drain, and a large fsync takes a while.
    stopHeartbeat = conn.heartbeat(() => encodeProgress(received));
    ctx.emit({ event: 'start', side: 'receive', name, bytes: offer.size, peer: conn.peer });
    progress(0);

    const end = await conn.expect([FrameType.End], 'RECEIVING');
    conn.setDataHandler(null);
    const h = algorithm.digestLength;
    if (end.digests.length !== 2 * h) {
      throw new FerryError('ERR_MALFORMED_PAYLOAD', `END carries ${end.digests.length} bytes, two ${algorithm.name} digests take ${2 * h}`);
    }
    await conn.local(() => fileSink.finish());
    const digest = hasher.digest();
    let verdict: FerryError | null = null;
    if (received !== offer.size) {
      verdict = new FerryError('ERR_SIZE_MISMATCH', `${received} of ${offer.size} bytes arrived before END`);
    } else if (!digest.equals(end.digests.subarray(0, h))) {
      verdict = new FerryError('ERR_HASH_MISMATCH', `${algorithm.name} digest mismatch: the data was altered in transit`);
    } else if (!digestOf(algorithm, offer.payload).equals(end.digests.subarray(h))) {
      verdict = new FerryError('ERR_HASH_MISMATCH', 'the offer (name, size, mode or mtime) was altered in transit');
    }
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
      ctx.emit({
        event: 'error',
        code: verdict.code,
        message: `${printableName(name)} from ${conn.peer}: ${verdict.message}`,
        exitCode: verdict.exitCode,
        name,
        peer: conn.peer,
      });
      return verdict.code;
    }
    // Reported before the verdict goes out: the file is saved even if the sender never hears so.
    ctx.emit({
      event: 'received',
      name,
      path: finalPath,
      bytes: offer.size,
      hash: { algorithm: algorithm.name, digest: digest.toString('hex') },
      seconds: (performance.now() - started) / 1000,
      peer: conn.peer,
    });
    await conn.write(encodeVerdict('OK', digest));
    return 'OK';
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
