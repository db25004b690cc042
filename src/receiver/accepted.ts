/**
 * An accepted offer (a file over the eager size, or a stream): OFFER, then
 * ACCEPT (with the offset and digest of a kept partial) or REFUSE, maybe
 * RESUME, DATA, END, VERDICT. The bytes belong to an IncomingFile, which
 * decides at the end whether they are named, kept or deleted.
 */
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReceiverConnection } from '../connection.js';
import { progressReporter } from '../events.js';
import { batchedHasher, type Hasher } from '../hash.js';
import { OfferFlag } from '../protocol/constants.js';
import { FerryError, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeAccept, encodeHeartbeat, encodeRefuse, encodeVerdict, type OfferFrame } from '../protocol/messages.js';
import { busy, isRefused, verify, type Checked } from './checks.js';
import { IncomingFile } from './incoming-file.js';
import { checkFree } from './place.js';
import { replaces } from './probe.js';
import * as report from './report.js';
import type { SessionContext } from './session.js';
import type { Folder } from './target.js';

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

/** What an accepted offer settled as: a refusal or verdict code (the session goes on). Protocol and I/O failures throw. */
export interface Settled {
  code: ErrorCode;
}

/**
 * Answers one accepted-kind OFFER. `naming` tells the session which file a
 * failure that ends the session concerns (undefined once the file is saved).
 */
export async function receiveAccepted(conn: ReceiverConnection, offer: OfferFrame, ctx: SessionContext, naming: (name: string | undefined) => void): Promise<Settled> {
  const r = { emit: ctx.emit, peer: conn.peer };
  const refuse = async (err: FerryError, name: string): Promise<Settled> => {
    await conn.write(encodeRefuse(err.code, err.message));
    report.refused(r, err, name);
    return { code: err.code };
  };
  const checked = ctx.check(offer);
  if (isRefused(checked)) return refuse(checked.refusal, checked.name);
  const opened = await openIncoming(conn, offer, ctx, checked);
  if (opened instanceof FerryError) return refuse(opened, checked.name);
  const file = opened;
  naming(checked.name);
  const heartbeat = { stop: (): void => {} };
  try {
    const transfer: Transfer = { conn, offer, ctx, checked, file };
    const received = await receiveBytes(transfer, heartbeat);
    heartbeat.stop();
    return await settle(transfer, received, naming);
  } catch (err) {
    await file.finish(RESUMABLE.has(toFerryError(err).code) ? 'keep' : 'discard');
    throw err;
  } finally {
    heartbeat.stop();
    conn.setDataHandler(null);
    await file.finish('discard');
    ctx.inFlight.delete(checked.name);
  }
}

/**
 * The file's destination and its IncomingFile, or the refusal (nothing
 * kept). On success the name is in ctx.inFlight: the caller takes it out.
 */
async function openIncoming(conn: ReceiverConnection, offer: OfferFrame, ctx: SessionContext, file: Checked): Promise<IncomingFile | FerryError> {
  const opened = await openUnclaimed(conn, offer, ctx, file);
  if (opened instanceof FerryError) ctx.inFlight.delete(file.name);
  return opened;
}

async function openUnclaimed(conn: ReceiverConnection, offer: OfferFrame, ctx: SessionContext, file: Checked): Promise<IncomingFile | FerryError> {
  const stream = (offer.flags & OfferFlag.Stream) !== 0;
  if (ctx.stdout) {
    if (ctx.stdout.taken) return new FerryError('ERR_USAGE', 'this receiver writes one file to its standard output, and has it');
    ctx.stdout.taken = true;
    ctx.inFlight.add(file.name);
    return IncomingFile.toStream(ctx.stdout.stream);
  }
  let folder: Folder;
  try {
    folder = await conn.local(async () => ctx.tree.parentOf(file.parts));
  } catch (err) {
    return toFerryError(err, 'ERR_IO');
  }
  const name = file.parts[file.parts.length - 1]!;
  try {
    checkFree(folder, name, replaces(ctx, offer));
    const free = stream ? undefined : await freeBytes(folder);
    if (free !== undefined && offer.size > free) throw new FerryError('ERR_TOO_LARGE', `${offer.size} bytes do not fit: ${free} bytes free`);
    // Checked again after the awaits above, right before taking the name.
    if (ctx.inFlight.has(file.name)) throw busy();
    ctx.inFlight.add(file.name);
  } catch (err) {
    folder.close();
    return toFerryError(err, 'ERR_IO');
  }
  const to = { folder, name, relativePath: file.name, meta: offer, umask: ctx.target.umask, overwrite: replaces(ctx, offer), fsync: ctx.fsync };
  try {
    return await conn.local(() => IncomingFile.onDisk(to, { resumable: !stream, limit: offer.size }));
  } catch (err) {
    return toFerryError(err, 'ERR_IO');
  }
}

/** One accepted offer on its way: the connection, the offer as checked, and the file its bytes go to. */
interface Transfer {
  conn: ReceiverConnection;
  offer: OfferFrame;
  ctx: SessionContext;
  checked: Checked;
  file: IncomingFile;
}

/** What arrived by END: the bytes held (from `offset` on, this run), their hasher, END's digests. */
interface Arrived {
  received: number;
  hasher: Hasher;
  end: Buffer;
  offset: number;
  started: number;
}

/** ACCEPT, maybe RESUME, then DATA until END; returns the bytes held and their hasher. */
async function receiveBytes(transfer: Transfer, heartbeat: { stop: () => void }): Promise<Arrived> {
  const { conn, offer, ctx, checked, file } = transfer;
  const stream = (offer.flags & OfferFlag.Stream) !== 0;
  const started = performance.now();
  let hasher: Hasher = batchedHasher(checked.algorithm.create());
  let offset = file.offset;
  if (offset > 0) await conn.local(() => file.hashPrefix(hasher));
  let received = offset;
  const progress = progressReporter(ctx.emit, { side: 'receive', name: checked.name, bytes: offer.size, peer: conn.peer });
  const sink = file.sink;
  sink.onError = (err) => conn.abort(err);
  sink.onDrain = () => conn.resumeData();
  const limit = stream ? ctx.maxSize : offer.size;
  conn.setDataHandler((piece) => {
    if (limit !== undefined && received + piece.length > limit) {
      throw stream
        ? new FerryError('ERR_TOO_LARGE', `the stream went over this receiver's limit of ${limit} bytes`)
        : new FerryError('ERR_SIZE_MISMATCH', `more than the ${offer.size} bytes offered`);
    }
    received += piece.length;
    sink.write(piece);
    hasher.update(piece);
    progress(received);
    if (sink.full) conn.pauseData();
    ctx.throttle?.(piece.length);
  }, { room: () => (limit ?? Number.MAX_SAFE_INTEGER) - received, tooMuch: stream ? 'ERR_TOO_LARGE' : 'ERR_SIZE_MISMATCH' });
  await conn.write(encodeAccept(offset, offset > 0 ? hasher.digest() : undefined));
  // Until the verdict the sender hears nothing else from us: on a slow link
  // its writes take long to drain, and a large flush takes a while.
  heartbeat.stop = conn.heartbeat(() => encodeHeartbeat(received));
  if (offset > 0) {
    const resume = await conn.expect('ACCEPTED');
    if (resume.offset === 0) {
      // The sender's file starts differently: what we held was another file.
      await conn.local(() => file.restart());
      hasher = batchedHasher(checked.algorithm.create());
      received = 0;
      offset = 0;
    } else if (resume.offset !== offset) {
      throw new FerryError('ERR_MALFORMED_PAYLOAD', `RESUME at ${resume.offset}, offered ${offset}`);
    }
  }
  ctx.emit({ event: 'start', side: 'receive', name: checked.name, bytes: offer.size, peer: conn.peer, ...(offset > 0 ? { resumedFrom: offset } : {}) });
  progress(received);
  const end = await conn.expect('RECEIVING');
  conn.setDataHandler(null);
  await conn.local(() => sink.finish());
  return { received, hasher, end: end.digests, offset, started };
}

/** END arrived: verify, name or delete, and answer VERDICT. */
async function settle(transfer: Transfer, got: Arrived, naming: (name: string | undefined) => void): Promise<Settled> {
  const { conn, offer, ctx, checked, file } = transfer;
  const r = { emit: ctx.emit, peer: conn.peer };
  const stream = (offer.flags & OfferFlag.Stream) !== 0;
  const digest = got.hasher.digest();
  let verdict = verify(checked.algorithm, offer, { digests: got.end, digest, received: got.received, expected: stream ? undefined : offer.size });
  if (verdict === null) {
    try {
      await conn.local(() => file.finish('name'));
      // Saved under its name: from here on, a failure is the session's, not this file's.
      naming(undefined);
    } catch (err) {
      verdict = toFerryError(err);
      if (verdict.code !== 'ERR_EXISTS') throw verdict;
    }
  }
  if (verdict) {
    // Delete first: when the sender hears of the failure, nothing is left here.
    await file.finish('discard');
    await conn.write(encodeVerdict(verdict.code, digest, verdict.message));
    report.failed(r, verdict, checked.name);
    return { code: verdict.code };
  }
  const path = ctx.stdout ? '-' : join(ctx.target.path, checked.name);
  const seconds = (performance.now() - got.started) / 1000;
  // Reported before the verdict goes out: the file is saved even if the sender never hears so.
  report.received(r, { name: checked.name, path, bytes: got.received, algorithm: checked.algorithm, digest, seconds, resumedFrom: got.offset });
  await conn.write(encodeVerdict('OK', digest));
  return { code: 'OK' };
}

/** Free bytes for an unprivileged writer in `folder`, or undefined where unknown. */
async function freeBytes(folder: Folder): Promise<number | undefined> {
  try {
    const s = await statfs(folder.path);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}
