/**
 * One sender's session on the receiving side, as the protocol's flow
 * (docs/protocol.md, section 4): HELLO, then OFFER after OFFER until BYE.
 * A probe goes to probe.ts, an eager offer or a folder to eager.ts, any
 * other offer to accepted.ts; this file only dispatches and reports what ends a session.
 */
import type { Writable } from 'node:stream';
import type { ReceiverConnection } from '../connection.js';
import type { EventListener } from '../events.js';
import { SUPPORTED_ALGORITHMS } from '../hash.js';
import { printableName } from '../printable.js';
import { Feature, FrameType, OfferFlag } from '../protocol/constants.js';
import { exitCodeOf } from '../exit-codes.js';
import { FerryError, toFerryError } from '../protocol/errors.js';
import { encodeHello, type OfferFrame } from '../protocol/messages.js';
import { receiveAccepted } from './accepted.js';
import { checkOffer, type Checked, type Refused } from './checks.js';
import { Replies, receiveEager } from './eager.js';
import { answerProbe } from './probe.js';
import type { TargetDir, TargetTree } from './target.js';

export interface SessionContext {
  /** --dir, open. */
  target: TargetDir;
  /** This session's way through it. */
  tree: TargetTree;
  /** The receiver's checks of an offer (checks.ts), bound to its policy. */
  check(offer: OfferFrame): Checked | Refused;
  overwrite: boolean;
  /** --allow-update: an offer with REPLACE (the sender's --update) may replace the file of its name (probe.ts). */
  allowUpdate: boolean;
  fsync: boolean;
  /** Largest file accepted, in bytes (streams are held to it as they arrive). */
  maxSize: number | undefined;
  /** Paths being received right now, across sessions: a second sender of the same path is told ERR_BUSY. */
  inFlight: Set<string>;
  /** --stdout: the one file goes there instead of into `dir`. */
  stdout: { stream: Writable; taken: boolean } | undefined;
  emit: EventListener;
  /** --limit-rate: DATA handlers report each piece read, and reading stops while over the limit (src/rate-limit.ts). */
  throttle?: ((bytes: number) => void) | undefined;
  /** Called once the peer proved to speak ferry (a valid HELLO). */
  onHandshake(): void;
}

/** A SessionContext's check(), from the receiver's policy. */
export function offerChecker(ctx: Pick<SessionContext, 'maxSize' | 'inFlight' | 'stdout'> & { allowHidden: boolean }): SessionContext['check'] {
  return (offer) => checkOffer(offer, { maxSize: ctx.maxSize, allowHidden: ctx.allowHidden, stdout: ctx.stdout, inFlight: ctx.inFlight });
}

/** How a session ended: the worst exit code of its files, and whether the connection was cut (the sender may come back and resume). */
export interface SessionEnd {
  exitCode: number;
  cut: boolean;
}

/** The connection broke rather than either side deciding to stop: a sender's --retries comes back. */
const CUTS: ReadonlySet<string> = new Set(['ERR_CONNECTION_LOST', 'ERR_TIMEOUT', 'ERR_TRUNCATED']);

/** Runs the session to its end. Resolves with how it ended, never rejects. */
export async function runSession(conn: ReceiverConnection, ctx: SessionContext): Promise<SessionEnd> {
  let worst = 0;
  let current: string | undefined;
  const replies = new Replies(conn);
  try {
    const hello = await conn.expect('HANDSHAKE');
    if (hello.type !== FrameType.Hello) {
      // Never falls back: a sender with a code gets no plaintext session.
      throw new FerryError('ERR_INSECURE_MISMATCH', 'this receiver runs --insecure, without a code; run the sender with --insecure too');
    }
    ctx.onHandshake();
    // Every ferry receiver takes ZDATA: a sender compresses only where it sees this bit (send --compress).
    conn.content.acceptsCompressed = true;
    await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id), Feature.Compressed));
    for (;;) {
      await replies.room();
      const frame = await conn.expect('IDLE');
      if (frame.type !== FrameType.Offer) break;
      if ((frame.flags & OfferFlag.Probe) !== 0) {
        answerProbe(conn, frame, ctx, replies);
        continue;
      }
      if ((frame.flags & (OfferFlag.Eager | OfferFlag.Directory)) !== 0) {
        await receiveEager(conn, frame, ctx, replies);
        continue;
      }
      // ACCEPT or REFUSE must follow the verdicts already queued.
      await replies.flush();
      const { code } = await receiveAccepted(conn, frame, ctx, (name) => (current = name));
      // That file is settled: a later failure is the session's, not the file's.
      current = undefined;
      worst = Math.max(worst, exitCodeOf(code));
    }
    await replies.flush();
    await conn.end();
    return { exitCode: Math.max(worst, replies.worst), cut: false };
  } catch (caught) {
    const err = toFerryError(caught);
    if (!err.remote) conn.abort(err);
    else conn.destroy();
    ctx.emit({
      event: 'error',
      code: err.code,
      message: current ? `${printableName(current)}: ${err.message}` : err.message,
      exitCode: exitCodeOf(err.code),
      peer: conn.peer,
      ...(current ? { name: current } : {}),
    });
    return { exitCode: Math.max(worst, replies.worst, exitCodeOf(err.code)), cut: !err.remote && CUTS.has(err.code) };
  }
}
