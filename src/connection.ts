/**
 * Joins a socket to the codec: frames out, frames in, an idle deadline, and
 * input flow control. Both the sender and the receiver drive one of these.
 *
 * Control frames are read one at a time with next(): decoding pauses after
 * each one until it is asked for, so a peer cannot queue up work. DATA
 * payloads go to the `onData` handler as they arrive. An ABORT from the peer,
 * a protocol violation, the idle deadline or the socket closing fail the
 * connection: every pending and later wait rejects with that error.
 */
import type { Socket } from 'node:net';
import { ContentRoute, type DataBound, type DataHandler } from './content-route.js';
import { Deadlines } from './deadlines.js';
import { FRAME_NAMES, FrameType } from './protocol/constants.js';
import { FrameDecoder } from './protocol/decoder.js';
import { FerryError, toFerryError } from './protocol/errors.js';
import { peerText } from './printable.js';
import { encodeAbort, type ControlFrame } from './protocol/messages.js';
import { allowedIn, SENDER_STATES, type FrameIn, type RECEIVER_STATES, type StateTable } from './protocol/states.js';

/** Why input is paused; reading resumes when no reason is left. 'rate': the receiver's --limit-rate (src/rate-limit.ts). */
type PauseReason = 'frame' | 'sink' | 'rate';

/** Default for every wait on the peer, both sides (--timeout). */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * While a control frame waits to be consumed, decoding stops but the socket
 * keeps reading until this many bytes are held: stopping and restarting the
 * socket for every frame cost more than the frames themselves on a tree of
 * small files (two epoll changes per file, each side).
 */
const HOLD_WHILE_BUSY = 1024 * 1024;

/** How long an ABORT may take to flush before the socket is destroyed anyway. */
export const ABORT_GRACE_MS = 2000;

export class Connection<T extends StateTable = StateTable> {
  readonly socket: Socket;
  readonly peer: string;
  private readonly decoder: FrameDecoder;
  /** The --timeout this connection holds its peer to. */
  readonly timeoutMs: number;
  private readonly deadlines: Deadlines;
  private pending: ControlFrame | null = null;
  private waiter: { resolve(frame: ControlFrame): void; reject(err: FerryError): void } | null = null;
  private readonly pauses = new Set<PauseReason>();
  private drainWaiters: Array<{ resolve(): void; reject(err: FerryError): void }> = [];
  private failure: FerryError | null = null;
  /** Where file content goes (content-route.ts); `content.acceptsCompressed` once this side offered ZDATA. */
  readonly content = new ContentRoute();
  /** Set while this side, not the peer, is what everyone waits for (disk, hashing). */
  private localWork = 0;
  /** The peer sent FIN; acted on once the decoder has delivered what it holds. */
  private inputEnded = false;
  /** Resolves when the socket has closed, whatever the reason. */
  readonly closed: Promise<void>;
  /** Rejects with the connection's error once it fails; never resolves. For races. */
  readonly failed: Promise<never>;
  private rejectFailed!: (err: FerryError) => void;

  private batching = false;
  /** This side's state table (src/protocol/states.ts): the receiver's or the sender's. */
  private readonly table: T;
  /** Heartbeats are welcome from the peer: true on the sending side. */
  private readonly acceptsHeartbeats: boolean;
  /** The highest byte count a HEARTBEAT reported, and who wants to hear when it grows (nextWithin). */
  private heartbeatCount = -1;
  private onHeartbeatProgress: (() => void) | null = null;
  /** Set by enter(): frames are checked against this state as they arrive, not when consumed. */
  private arrivalState: (keyof T & string) | null = null;

  /**
   * `table` is the state table of this side: RECEIVER_STATES or
   * SENDER_STATES. A sender's connection takes the peer's HEARTBEATs.
   */
  constructor(socket: Socket, timeoutMs: number, table: T) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.table = table;
    this.acceptsHeartbeats = table === SENDER_STATES;
    this.peer = formatPeer(socket.remoteAddress, socket.remotePort);
    this.decoder = new FrameDecoder({
      onFrame: (frame) => this.onFrame(frame),
      onData: (piece) => this.content.data(piece),
      onCompressed: (payload) => this.content.compressed(payload),
      compressedAllowed: () => this.content.takesCompressed,
    });
    this.deadlines = new Deadlines(timeoutMs, this.peer, {
      expire: (err) => {
        if (!this.failure) this.abort(err);
      },
      excused: () => this.localWork > 0 || this.pauses.has('sink') || this.pauses.has('rate'),
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => {});
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.deadlines.heard();
      try {
        this.decoder.push(chunk);
      } catch (err) {
        this.protocolFailure(toFerryError(err));
        return;
      }
      this.checkFrameDeadline();
      if (this.decoder.isPaused && this.decoder.buffered > HOLD_WHILE_BUSY) this.socket.pause();
    });
    socket.on('end', () => {
      this.inputEnded = true;
      this.checkEnd();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.fail(new FerryError('ERR_CONNECTION_LOST', `connection to ${this.peer} lost: ${err.code ?? err.message}`, { cause: err }));
    });
    socket.on('close', () => {
      this.deadlines.stop();
      this.fail(new FerryError('ERR_CONNECTION_LOST', `connection to ${this.peer} closed`));
    });
    socket.on('drain', () => this.settleDrains());
  }

  /** The error that ended this connection, if any. */
  get error(): FerryError | null {
    return this.failure;
  }

  /** Sends bytes; resolves at once, or when the socket has room again. Rejects if the connection failed. */
  write(bytes: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.socket.write(bytes)) return Promise.resolve();
    return this.drained();
  }

  /** A frame in parts (header, payload, end marker), in one system call; `done` as for writeThen(). */
  writePartsThen(parts: readonly Buffer[], done: () => void): boolean {
    if (this.failure) throw this.failure;
    this.socket.cork();
    let ok = true;
    for (const [i, part] of parts.entries()) {
      ok = i === parts.length - 1 ? this.writeThen(part, done) : this.socket.write(part);
    }
    this.socket.uncork();
    return ok;
  }

  /** Like write(), but `done` runs once the socket no longer needs `bytes` (so the buffer may be reused). */
  writeThen(bytes: Buffer, done: () => void): boolean {
    if (this.failure) throw this.failure;
    return this.socket.write(bytes, () => {
      this.deadlines.heard();
      done();
    });
  }

  /**
   * Holds writes until the current burst of synchronous and promise work is
   * done, then sends them in one system call: a tree of small files is many
   * small frames, one write each otherwise.
   */
  batch(): void {
    if (this.batching) return;
    this.batching = true;
    this.socket.cork();
    process.nextTick(() => {
      this.batching = false;
      this.socket.uncork();
    });
  }

  /** Waits for 'drain'. */
  drained(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** The next control frame. An ABORT from the peer rejects with the peer's code. */
  next(): Promise<ControlFrame> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) throw new Error('next() called twice');
    const frame = this.pending;
    if (frame) {
      this.pending = null;
      this.unpause('frame');
      return Promise.resolve(frame);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.unpause('frame');
    });
  }

  /**
   * next(), checked against what `state` allows in this side's table. A
   * frame may have arrived while the side was in an earlier state (the peer
   * pipelines): it is judged by the state it is consumed in.
   */
  async expect<S extends keyof T & string>(state: S, options: { withinMs?: number } = {}): Promise<FrameIn<T, S>> {
    this.arrivalState = null;
    const frame = options.withinMs === undefined ? await this.next() : await this.nextWithin(options.withinMs, state);
    if (!allowedIn(this.table, state, frame.type)) throw this.protocolFailure(unexpected(frame.type, state));
    return frame as FrameIn<T, S>;
  }

  /**
   * next(), but the frame must come within `ms` whatever else arrives
   * meanwhile: heartbeats keep the idle deadline off, not this one (a
   * receiver that heartbeats forever after END never answers).
   */
  private nextWithin(ms: number, state: string): Promise<ControlFrame> {
    const bound = this.deadlines.bounded(ms, `in state ${state}`);
    // A HEARTBEAT that counts more bytes than any before: the bytes are still arriving there (a slow link), so the bound starts again.
    this.onHeartbeatProgress = () => bound.extend();
    return this.next().finally(() => {
      bound.clear();
      this.onHeartbeatProgress = null;
    });
  }

  /**
   * Enters `state`: from now until the next expect(), a frame that `state`
   * does not allow fails the connection the moment it arrives, instead of
   * waiting to be read (the sender's SENDING, where the peer must say
   * nothing but HEARTBEAT, is read by no one). Throws that failure, or the
   * connection's earlier one, if there is one.
   */
  enter(state: keyof T & string): void {
    this.arrivalState = state;
    // Heartbeats count the bytes of the file at hand: a new state, a new count.
    this.heartbeatCount = -1;
    if (this.pending) {
      if (!allowedIn(this.table, state, this.pending.type)) throw this.protocolFailure(unexpected(this.pending.type, state));
    } else {
      // Decoding stops after each frame until it is read: resume it, or what arrives now would only be judged once read, in a later state.
      this.unpause('frame');
    }
    if (this.failure) throw this.failure;
  }

  /** Where DATA payloads go; null makes any DATA or ZDATA frame a protocol error. */
  setDataHandler(handler: DataHandler | null, bound?: DataBound): void {
    this.content.set(handler, bound);
  }

  /**
   * Input flow control (backpressure to the peer through TCP), for the data
   * sink or the rate limit: each reason is lifted on its own, so a sink
   * that drains does not undo a rate pause.
   */
  pauseData(reason: 'sink' | 'rate' = 'sink'): void {
    this.pause(reason);
  }

  resumeData(reason: 'sink' | 'rate' = 'sink'): void {
    this.unpause(reason);
  }

  /**
   * Runs local work (disk, hashing) during which the peer legitimately waits
   * for us: the idle deadline does not count it against the peer.
   */
  async local<T>(work: () => Promise<T>): Promise<T> {
    this.localWork++;
    try {
      return await work();
    } finally {
      this.localWork--;
      this.deadlines.heard();
    }
  }

  /**
   * Sends `frame` until the returned function is called: a heartbeat, so
   * that a peer waiting on us (while our side of a slow link drains, or while
   * we flush to disk) knows we are alive. Every third of the timeout, at most
   * every 5 s (docs/protocol.md, section 4, rule 7).
   */
  heartbeat(frame: () => Buffer): () => void {
    const everyMs = Math.min(Math.max(this.timeoutMs / 3, 50), 5000);
    const timer = setInterval(() => {
      if (!this.failure && !this.socket.writableEnded) this.socket.write(frame());
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Tells the peer why we stop (best effort), then closes. Idempotent.
   * Input is drained meanwhile: closing a socket with unread bytes sends a
   * reset, and the peer would see "connection reset" instead of our ABORT.
   * `closed` resolves when the peer has closed too, or after a grace period.
   */
  abort(err: FerryError): void {
    this.fail(err);
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(encodeAbort(err.code, err.message));
    this.socket.end();
    this.drainInput();
    setTimeout(() => this.socket.destroy(), ABORT_GRACE_MS).unref();
  }

  /** Reads and drops whatever the peer still sends, until it closes. */
  private drainInput(): void {
    this.socket.removeAllListeners('data');
    this.socket.on('data', () => {});
    this.socket.on('end', () => this.socket.destroy());
    this.socket.resume();
  }

  /** Closes after everything written has been flushed. */
  end(): Promise<void> {
    this.deadlines.stop();
    if (!this.socket.destroyed) this.socket.end();
    setTimeout(() => this.socket.destroy(), ABORT_GRACE_MS).unref();
    return this.closed;
  }

  destroy(): void {
    this.deadlines.stop();
    this.socket.destroy();
  }

  private onFrame(frame: ControlFrame): void {
    if (frame.type === FrameType.Heartbeat && this.acceptsHeartbeats) {
      // Its arrival already refreshed the idle deadline; a count that grew also restarts a bounded wait.
      if (frame.received > this.heartbeatCount) {
        this.heartbeatCount = frame.received;
        this.onHeartbeatProgress?.();
      }
      return;
    }

    if (frame.type === FrameType.Abort) {
      const said = frame.message === '' ? '' : `, saying ${peerText(frame.message)}`;
      this.fail(new FerryError(frame.code, `${this.peer} aborted with ${frame.code}${said}`, { remote: true }));
      this.socket.end();
      // A peer that aborted and then keeps its side open must not hold the socket.
      setTimeout(() => this.socket.destroy(), ABORT_GRACE_MS).unref();
      return;
    }
    if (this.arrivalState !== null && !allowedIn(this.table, this.arrivalState, frame.type)) {
      throw unexpected(frame.type, this.arrivalState);
    }
    // One control frame at a time: stop decoding until it is consumed.
    this.pause('frame');
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = null;
      waiter.resolve(frame);
    } else {
      this.pending = frame;
    }
  }

  /**
   * A frame other than DATA must arrive whole within the timeout of its
   * first byte: the idle deadline alone counts bytes, so a peer dripping a
   * HELLO one byte per (timeout - 1) seconds would hold this side for ever.
   * DATA only has to keep moving (a 1 MiB frame on a slow link takes long).
   * Bytes held while this side is busy (the decoder paused) are not counted.
   */
  private checkFrameDeadline(): void {
    this.deadlines.partialFrame(this.decoder.inControlFrame && !this.decoder.isPaused);
  }

  /** A violation by the peer: tell it, close, and return the error for throwing. */
  private protocolFailure(err: FerryError): FerryError {
    this.abort(err);
    return err;
  }

  private fail(err: FerryError): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectFailed(err);
    this.deadlines.stop();
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
    this.settleDrains();
  }

  private settleDrains(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) {
      if (this.failure) w.reject(this.failure);
      else w.resolve();
    }
  }

  private pause(reason: PauseReason): void {
    this.pauses.add(reason);
    this.decoder.pause();
    // A waiting frame holds the decoder only; the socket stops once enough is held (see HOLD_WHILE_BUSY).
    if (reason !== 'frame' || this.decoder.buffered > HOLD_WHILE_BUSY) this.socket.pause();
  }

  private unpause(reason: PauseReason): void {
    if (!this.pauses.delete(reason) || this.pauses.size > 0 || this.failure) return;
    if (this.socket.isPaused()) this.socket.resume();
    try {
      this.decoder.resume();
    } catch (err) {
      this.protocolFailure(toFerryError(err));
      return;
    }
    this.checkFrameDeadline();
    this.checkEnd();
  }

  /** After the peer's FIN and once every buffered frame was delivered: a clean end, or a cut inside a frame. */
  private checkEnd(): void {
    if (!this.inputEnded || this.failure || this.decoder.isPaused) return;
    try {
      this.decoder.end();
      this.fail(new FerryError('ERR_CONNECTION_LOST', `${this.peer} closed the connection`));
    } catch (err) {
      this.fail(toFerryError(err));
    }
  }
}

export type ReceiverConnection = Connection<typeof RECEIVER_STATES>;
export type SenderConnection = Connection<typeof SENDER_STATES>;

function unexpected(type: number, state: string): FerryError {
  return new FerryError('ERR_UNEXPECTED_FRAME', `unexpected ${FRAME_NAMES.get(type) ?? `frame 0x${type.toString(16)}`} in state ${state}`);
}

/** `host:port` of a peer, IPv4-mapped addresses unwrapped and IPv6 in brackets. */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (!address) return 'peer';
  const host = address.startsWith('::ffff:') ? address.slice(7) : address;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
