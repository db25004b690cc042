/**
 * One connection: its socket from the link (dialled, paired at a relay or
 * accepted; secured unless --insecure), HELLO both ways, the
 * files probed (unless --no-skip-same), then each entry still to send
 * offered in turn (eager, large or stream), and BYE. What ends it
 * early is returned, for the retry loop to judge.
 */
import type { Readable } from 'node:stream';
import { Connection, type SenderConnection } from '../connection.js';
import type { EventListener } from '../events.js';
import { SUPPORTED_ALGORITHMS, chooseAlgorithm, type HashAlgorithm } from '../hash.js';
import { Feature, FrameType } from '../protocol/constants.js';
import { FerryError, abortError, toFerryError } from '../protocol/errors.js';
import { encodeBye, encodeHello } from '../protocol/messages.js';
import { SENDER_STATES } from '../protocol/states.js';
import type { RateLimiter } from '../rate-limit.js';
import { EagerWindow, isEager } from './eager.js';
import { sendLarge } from './large.js';
import type { Link } from './link.js';
import { ProbeWindow } from './probe.js';
import type { FileResult, Results } from './results.js';
import type { BufferPool } from './source.js';
import { sendStream } from './stream.js';
import type { Entry } from './walk.js';

/** What every attempt of one send shares. */
export interface SendContext {
  /** How each attempt gets its socket (link.ts): dial, a relay's room, or the next receiver to connect. */
  link: Link;
  timeoutMs: number;
  /** The algorithm --hash forces, if any. */
  forced: HashAlgorithm | undefined;
  emit: EventListener;
  results: Results;
  chunkSize: number;
  /** Made on the first large file: a tree of small files never needs it. */
  pool: BufferPool | undefined;
  stdin: Readable;
  signal: AbortSignal | undefined;
  /** --limit-rate: DATA waits for its tokens (src/rate-limit.ts). */
  limiter: RateLimiter | undefined;
  /** Probe files first and leave out those the receiver holds the same (probe.ts): on the first attempt, and on retries. */
  probe: { first: boolean; retries: boolean };
  /** --update: every file offer asks for REPLACE. */
  update: boolean;
  /** --compress: ZDATA where the receiver's HELLO sets Feature.Compressed; `notice` once when it does not. */
  compress: { wanted: boolean; notice: ((message: string) => void) | undefined; told: boolean };
}

/** Why an attempt ended early. */
export interface AttemptFailure {
  error: FerryError;
  /** The entry on the wire when it failed: the session's error is reported against it. */
  during: Entry | undefined;
  /** The receiver was not reached: the dial or the secure handshake failed (wait.ts). */
  unreached?: true;
}

/**
 * Sends what `todo` holds over one connection, recording each final result
 * (ERR_BUSY refusals are left out, to be tried again). `cutIn` is the entry
 * the previous attempt failed in: a failure to connect is reported against
 * it, since it is still not delivered.
 */
export async function runAttempt(todo: readonly Entry[], ctx: SendContext, cutIn: Entry | undefined): Promise<AttemptFailure | undefined> {
  let conn: SenderConnection;
  try {
    conn = await connect(ctx);
  } catch (err) {
    return { error: toFerryError(err), during: cutIn, unreached: true };
  }
  const onAbort = (): void => conn.abort(abortError(ctx.signal));
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal?.aborted) onAbort();

  let busy = false;
  const record = (entry: Entry, result: FileResult): void => {
    if (!ctx.results.record(entry, result)) busy = true;
  };
  let window: EagerWindow | undefined;
  let probes: ProbeWindow | undefined;
  let current: Entry | undefined;
  try {
    const { algorithm, compress } = await hello(conn, ctx);
    // A retry is told which entry the last attempt was cut in.
    if (cutIn === undefined ? ctx.probe.first : ctx.probe.retries) probes = new ProbeWindow(conn, algorithm, record);
    const offered = probes ? await probes.run(todo) : todo;
    window = new EagerWindow(conn, algorithm, record, { limiter: ctx.limiter, update: ctx.update, compress });
    for (const entry of offered) {
      if (isEager(entry)) {
        await window.send(entry);
        continue;
      }
      // ACCEPT or REFUSE comes after the verdicts already due.
      await window.settleAll();
      current = entry;
      const file = { conn, algorithm, ctx, compress };
      record(entry, entry.kind === 'stdin' ? await sendStream({ ...file, entry }) : await sendLarge({ ...file, entry }));
      current = undefined;
    }
    await window.settleAll();
    await conn.write(encodeBye());
    await conn.end();
    return busy ? { error: new FerryError('ERR_BUSY', 'some files were arriving over another connection'), during: undefined } : undefined;
  } catch (err) {
    const error = toFerryError(conn.error?.code === 'ERR_SIGINT' || conn.error?.code === 'ERR_SIGTERM' ? conn.error : err);
    await hangUp(conn, error);
    return { error, during: current ?? probes?.oldest ?? window?.oldest };
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

async function connect(ctx: SendContext): Promise<SenderConnection> {
  return new Connection(await ctx.link.connect(), ctx.timeoutMs, SENDER_STATES);
}

/** HELLO both ways; the algorithm every offer of this connection uses, and whether its content may go compressed. */
async function hello(conn: SenderConnection, ctx: SendContext): Promise<{ algorithm: HashAlgorithm; compress: boolean }> {
  const forced = ctx.forced;
  await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)));
  const theirs = await conn.expect('HANDSHAKE');
  // As a receiver that wants a code answers our HELLO: never a fall back, and no advice to drop the code either.
  if (theirs.type !== FrameType.Hello) throw new FerryError('ERR_INSECURE_MISMATCH', `${conn.peer} speaks with a code, and this sender runs --insecure`);
  const algorithm = chooseAlgorithm(theirs.algorithms, forced);
  if (!algorithm) throw new FerryError('ERR_UNSUPPORTED_HASH', `the receiver does not support ${forced?.name ?? 'any hash this sender knows'}`);
  conn.enter('IDLE');
  const compress = ctx.compress.wanted && (theirs.features & Feature.Compressed) !== 0;
  if (ctx.compress.wanted && !compress && !ctx.compress.told) {
    // Once per send, not per retry: the same receiver answers the same way.
    ctx.compress.told = true;
    ctx.compress.notice?.(`${conn.peer} cannot decompress: sending without --compress`);
  }
  return { algorithm, compress };
}

/**
 * Tells the receiver why, unless it told us. The ABORT is queued behind DATA
 * already written: wait until it is out (abort() destroys the socket after a
 * grace period at the latest), or a CLI exiting next would drop it.
 */
async function hangUp(conn: SenderConnection, error: FerryError): Promise<void> {
  if (error.remote) {
    conn.destroy();
    return;
  }
  conn.abort(error);
  await conn.closed;
}
