/** Standard input: the size is not known ahead, so a STREAM offer; END settles the size and the digest. Never resumed. */
import { compressChunk } from '../compress.js';
import type { SenderConnection } from '../connection.js';
import { progressReporter } from '../events.js';
import { digestOf, type HashAlgorithm } from '../hash.js';
import { FrameType, OfferFlag } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';
import { encodeEnd, encodeFrame, encodeOffer, payloadOf } from '../protocol/messages.js';
import { paceWrite } from '../rate-limit.js';
import type { SendContext } from './attempt.js';
import { finish, offer } from './offer.js';
import { judge, refused, type FileResult } from './results.js';
import type { StdinEntry } from './walk.js';

export interface Stream {
  conn: SenderConnection;
  entry: StdinEntry;
  algorithm: HashAlgorithm;
  ctx: SendContext;
  /** --compress, and the receiver can decompress. */
  compress: boolean;
}

export async function sendStream({ conn, entry, algorithm, ctx, compress }: Stream): Promise<FileResult> {
  const started = performance.now();
  const offerFrame = encodeOffer({ name: entry.name, size: 0, mtimeMs: Date.now(), mode: 0o644, algorithm: algorithm.id, flags: OfferFlag.Stream | (ctx.update ? OfferFlag.Replace : 0) });
  const reply = await offer(conn, offerFrame);
  if (reply.type === FrameType.Refuse) return refused(entry, reply, started);
  if (reply.offset !== 0) throw new FerryError('ERR_MALFORMED_PAYLOAD', 'ACCEPT of a stream at an offset');
  ctx.emit({ event: 'start', side: 'send', name: entry.name, bytes: 0, peer: conn.peer });
  const hasher = algorithm.create();
  let sent = 0;
  const progress = progressReporter(ctx.emit, { side: 'send', name: entry.name, bytes: 0, peer: conn.peer });
  const chunks = ctx.stdin[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([chunks.next(), conn.failed]);
    if (next.done) break;
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string);
    for (let at = 0; at < chunk.length; at += ctx.chunkSize) {
      const piece = chunk.subarray(at, at + ctx.chunkSize);
      hasher.update(piece);
      sent += piece.length;
      await paceWrite(ctx.limiter, piece.length, conn.failed);
      // One chunk at a time: standard input is rarely faster than one core compresses.
      const compressed = compress ? await compressChunk(piece) : null;
      await conn.write(compressed ? encodeFrame(FrameType.ZData, compressed) : encodeFrame(FrameType.Data, piece));
      progress(sent);
    }
  }
  const digest = hasher.digest();
  const verdict = await finish(conn, encodeEnd(digest, digestOf(algorithm, payloadOf(offerFrame))), sent);
  return judge({ entry, algorithm, digest, verdict, started, transferred: sent, resumedFrom: 0 });
}
