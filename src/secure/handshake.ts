/**
 * The secure handshake (docs/security.md): SPAKE2 in ferry frames on the
 * plain TCP socket, then TLS 1.3 keyed by the SPAKE2 result (external PSK,
 * with ECDHE on top), and ferry's own frames run inside that TLS socket.
 *
 * ```
 * sender (A, TLS client)                        receiver (B, TLS server)
 *   PAKE pA      ------------------------------->
 *                <-------------------------------  PAKE pB, CONFIRM cB  (one write)
 *   CONFIRM cA   ------------------------------->
 *                <-------------------------------  SECURE
 *   TLS ClientHello ... (both sides: TLS from here on)
 * ```
 *
 * Neither side sends a byte it was not asked for, so when TLS starts no
 * plaintext is left in flight: any byte after the last handshake frame is
 * ERR_UNEXPECTED_FRAME.
 */
import { hkdfSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { ABORT_GRACE_MS, formatPeer } from '../connection.js';
import { FrameType, FRAME_NAMES } from '../protocol/constants.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { FerryError, abortError, toFerryError } from '../protocol/errors.js';
import { encodeAbort, encodeFrame, type ControlFrame } from '../protocol/messages.js';
import { normalizeCode } from './code.js';
import { passwordScalar, spake2Finish, spake2Start, tagsEqual } from './spake2.js';

export interface HandshakeOptions {
  /** Bound on every wait of the handshake (each frame, the password hash, the TLS handshake). */
  timeoutMs: number;
  /** Aborting fails the handshake with abortError(signal); the peer is told with an ABORT. */
  signal?: AbortSignal;
}

/** The one PSK identity ferry offers and accepts: the key, not the name, is the secret. */
export const PSK_IDENTITY = 'ferry';
/** HKDF info for the TLS PSK, derived from SPAKE2's Ke (never used directly). */
const PSK_INFO = 'ferry tls psk v1';
const PSK_BYTES = 32;

/**
 * TLS 1.3 suites, in preference order (the client's order decides). node's
 * PSK callbacks key a SHA-256 PSK, so only SHA-256 suites can use it (with
 * TLS_AES_256_GCM_SHA384 alone the handshake fails). AES-128-GCM first: with
 * AES-NI one core seals ~15% more with it than with ChaCha20-Poly1305 here;
 * end to end over loopback the two are within noise (docs/security.md, 7).
 */
export const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

/** Wrong-code limiter defaults: 5 at once, then one every 6 s (10 a minute sustained). */
export const DEFAULT_RATE_LIMIT = Object.freeze({ burst: 5, refillMs: 6000 });


/** The TLS PSK for a SPAKE2 session key: HKDF-SHA256(ikm = Ke, salt = empty, info = "ferry tls psk v1", 32 bytes). */
export function tlsPsk(Ke: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', Ke, Buffer.alloc(0), PSK_INFO, PSK_BYTES));
}

/** One handshake's claim on the limiter: settle it exactly once. */
export interface Attempt {
  /** `failed`: the peer saw pB and did not prove the code; the token stays spent. Otherwise it is given back. */
  settle(failed: boolean): void;
}

/**
 * Receiver-side state for one code: the password scalar, computed once, and
 * the wrong-attempt limiter shared by every connection to this receiver.
 *
 * The limiter is a token bucket: `burst` tokens, one more every `refillMs`.
 * A handshake takes a token before the receiver does any work for it and
 * gives it back unless it fails after pB was sent. Taking the token up front
 * keeps parallel connections from guessing past the limit: while every token
 * is held, a new handshake waits for one (bounded by the timeout); with no
 * token left and none held, it is refused at once (ERR_RATE_LIMITED).
 */
export class CodeGuard {
  /** The normalized code. */
  readonly code: string;
  readonly burst: number;
  readonly refillMs: number;
  private readonly now: () => number;
  /** Tokens, counted in milliseconds of refill (a token is `refillMs`): integer clocks stay exact. */
  private credit: number;
  private refilledAt: number;
  private failed = 0;
  private scalarPromise: Promise<bigint> | null = null;
  /** Handshakes holding a token right now, and those waiting for one. */
  private holding = 0;
  private waiters: Array<() => void> = [];

  /** Throws ERR_USAGE for a malformed code. `now` (milliseconds, monotonic) is for tests. */
  constructor(code: string, limits: { burst?: number; refillMs?: number; now?: () => number } = {}) {
    this.code = normalizeCode(code);
    this.burst = limits.burst ?? DEFAULT_RATE_LIMIT.burst;
    this.refillMs = limits.refillMs ?? DEFAULT_RATE_LIMIT.refillMs;
    if (!Number.isInteger(this.burst) || this.burst < 1) throw new RangeError(`burst must be a positive integer, got ${this.burst}`);
    if (!(this.refillMs > 0)) throw new RangeError(`refillMs must be positive, got ${this.refillMs}`);
    this.now = limits.now ?? (() => performance.now());
    this.credit = this.burst * this.refillMs;
    this.refilledAt = this.now();
  }

  /** Handshakes that failed after the receiver sent pB (wrong code, or the peer gave up). */
  get failures(): number {
    return this.failed;
  }

  /** w for this code (scrypt, about 0.1 s), computed on first use and kept. Call it early to warm up. */
  scalar(): Promise<bigint> {
    this.scalarPromise ??= passwordScalar(this.code).catch((err: unknown) => {
      this.scalarPromise = null;
      throw err;
    });
    return this.scalarPromise;
  }

  /** Milliseconds until a new handshake is allowed; 0 when one is allowed now. */
  retryAfterMs(): number {
    this.refill();
    return Math.max(0, Math.ceil(this.refillMs - this.credit));
  }

  /** @internal A token for one handshake, or null when the bucket is empty. */
  begin(): Attempt | null {
    this.refill();
    if (this.credit < this.refillMs) return null;
    this.credit -= this.refillMs;
    this.holding++;
    let settled = false;
    return {
      settle: (failed) => {
        if (settled) return;
        settled = true;
        this.holding--;
        if (failed) {
          this.failed++;
        } else {
          this.refill();
          this.credit = Math.min(this.burst * this.refillMs, this.credit + this.refillMs);
        }
        const waiters = this.waiters;
        this.waiters = [];
        for (const wake of waiters) wake();
      },
    };
  }

  /**
   * A token for one handshake, waiting while other handshakes hold the
   * tokens (they give them back when they succeed): 100 honest senders
   * arriving at once go through a few at a time instead of being refused.
   * Resolves null when no token is left and none is held (the code was
   * guessed wrong too often). `cancel()` gives up the wait, or the token if
   * it came too late to be used.
   */
  acquire(): { attempt: Promise<Attempt | null>; cancel(): void } {
    let cancelled = false;
    let got: Attempt | null = null;
    const attempt = (async (): Promise<Attempt | null> => {
      for (;;) {
        if (cancelled) return null;
        got = this.begin();
        if (got || this.holding === 0) return got;
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    })();
    return {
      attempt,
      cancel: () => {
        cancelled = true;
        got?.settle(false);
      },
    };
  }

  private refill(): void {
    const now = this.now();
    this.credit = Math.min(this.burst * this.refillMs, this.credit + Math.max(0, now - this.refilledAt));
    this.refilledAt = now;
  }
}

/**
 * Password scalars of the codes this process has sent with: scrypt costs
 * about 0.1 s, and a library user sending 100 files at once with one code
 * (or a sender retrying) needs it once, not per connection.
 */
const scalars = new Map<string, Promise<bigint>>();
function cachedScalar(code: string): Promise<bigint> {
  let w = scalars.get(code);
  if (!w) {
    if (scalars.size >= 16) scalars.clear();
    w = passwordScalar(code);
    scalars.set(code, w);
    w.catch(() => scalars.delete(code));
  }
  return w;
}

/** Sender: PAKE + TLS over a connected socket; resolves to the TLS socket ferry frames then run in. */
export async function secureClient(socket: Socket, code: string, options: HandshakeOptions): Promise<TLSSocket> {
  let password: string;
  try {
    password = normalizeCode(code);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const hs = new Handshake(socket, options);
  try {
    const w = await hs.bounded(cachedScalar(password), 'the password hash');
    const state = spake2Start('A', w);
    hs.write(encodeFrame(FrameType.Pake, state.share));
    const first = await hs.next('PAKE');
    if (first.type === FrameType.Hello) {
      throw new FerryError('ERR_INSECURE_MISMATCH', 'this receiver runs without a code; run both sides with --insecure, or the receiver with --code');
    }
    const keys = spake2Finish(state, hs.expect(first, FrameType.Pake).share);
    const confirm = hs.expect(await hs.next('CONFIRM'), FrameType.Confirm);
    if (!tagsEqual(confirm.tag, keys.cB)) throw new FerryError('ERR_BAD_CODE', "wrong code: the receiver's code differs");
    hs.write(encodeFrame(FrameType.Confirm, keys.cA));
    hs.expect(await hs.next('SECURE'), FrameType.Secure);
    return await hs.startTls('client', tlsPsk(keys.Ke));
  } catch (err) {
    throw hs.fail(err);
  }
}

/** Receiver: PAKE + TLS over an accepted socket, checked against `guard`'s code and limiter. */
export async function secureServer(socket: Socket, guard: CodeGuard, options: HandshakeOptions): Promise<TLSSocket> {
  const hs = new Handshake(socket, options);
  let attempt: Attempt | null = null;
  let exposed = false;
  try {
    const first = await hs.next('PAKE');
    if (first.type === FrameType.Hello) {
      throw new FerryError('ERR_INSECURE_MISMATCH', 'this receiver requires a code; run the sender with --code, or both sides with --insecure');
    }
    const share = hs.expect(first, FrameType.Pake).share;
    const ticket = guard.acquire();
    try {
      attempt = await hs.bounded(ticket.attempt, 'a free handshake slot');
    } catch (err) {
      ticket.cancel();
      throw err;
    }
    if (attempt === null) {
      const seconds = Math.max(1, Math.ceil(guard.retryAfterMs() / 1000));
      throw new FerryError('ERR_RATE_LIMITED', `too many wrong codes; try again in ${seconds} s`);
    }
    const w = await hs.bounded(guard.scalar(), 'the password hash');
    const state = spake2Start('B', w);
    const keys = spake2Finish(state, share);
    hs.write(Buffer.concat([encodeFrame(FrameType.Pake, state.share), encodeFrame(FrameType.Confirm, keys.cB)]));
    exposed = true;
    const confirm = hs.expect(await hs.next('CONFIRM'), FrameType.Confirm);
    if (!tagsEqual(confirm.tag, keys.cA)) throw new FerryError('ERR_BAD_CODE', "wrong code: the sender's code differs");
    attempt.settle(false);
    return await hs.startTls('server', tlsPsk(keys.Ke), encodeFrame(FrameType.Secure));
  } catch (err) {
    // Ctrl-C here is not the peer's guess: only a peer that saw pB and then failed spends the token.
    attempt?.settle(exposed && options.signal?.aborted !== true);
    throw hs.fail(err);
  }
}

const enum Phase {
  Plain,
  Tls,
  Done,
  Failed,
}

/**
 * One side's socket during the handshake: frames in one at a time, every wait
 * bounded by the timeout, the signal and the connection, and the hand-over to
 * TLS. Frames are decoded one at a time (the decoder pauses after each), so
 * bytes behind the last handshake frame stay undecoded and can be refused.
 */
class Handshake {
  private readonly socket: Socket;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly peer: string;
  private readonly decoder: FrameDecoder;
  private phase = Phase.Plain;
  private pending: ControlFrame | null = null;
  /** A protocol violation or the signal: reported at once. */
  private fatal: FerryError | null = null;
  /** The connection ended or broke: reported once the frames that came before it are read. */
  private ended: FerryError | null = null;
  private wake: (() => void) | null = null;
  private readonly interrupts = new Set<(err: FerryError) => void>();
  private tlsSocket: TLSSocket | null = null;

  constructor(socket: Socket, options: HandshakeOptions) {
    this.socket = socket;
    this.timeoutMs = options.timeoutMs;
    this.signal = options.signal;
    this.peer = formatPeer(socket.remoteAddress, socket.remotePort);
    this.decoder = new FrameDecoder({
      onFrame: (frame) => {
        this.pending = frame;
        this.decoder.pause();
      },
      onData: () => {
        throw new FerryError('ERR_UNEXPECTED_FRAME', 'unexpected DATA frame during the secure handshake');
      },
    });
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    if (socket.destroyed) this.onEnd();
    if (this.signal?.aborted) this.setFatal(abortError(this.signal));
    else this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Waits for `work`, bounded by the timeout, the signal and (unless a frame is waiting) the connection. */
  bounded<T>(work: Promise<T>, waitingFor: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const interrupt = (err: FerryError): void => settle(() => reject(err));
      const timer = setTimeout(() => {
        const seconds = Number((this.timeoutMs / 1000).toFixed(3));
        interrupt(new FerryError('ERR_TIMEOUT', `${this.peer}: no progress for ${seconds} s during the secure handshake (waiting for ${waitingFor})`));
      }, this.timeoutMs);
      const settle = (action: () => void): void => {
        clearTimeout(timer);
        this.interrupts.delete(interrupt);
        action();
      };
      this.interrupts.add(interrupt);
      work.then(
        (value) => settle(() => resolve(value)),
        (err: unknown) => settle(() => reject(err)),
      );
      if (this.fatal) interrupt(this.fatal);
    });
  }

  /** The next frame from the peer. */
  next(waitingFor: string): Promise<ControlFrame> {
    const frame = new Promise<ControlFrame>((resolve, reject) => {
      const check = (): boolean => {
        if (this.pending) {
          const taken = this.pending;
          this.pending = null;
          resolve(taken);
        } else if (this.fatal || this.ended) {
          reject(this.fatal ?? this.ended);
        } else {
          return false;
        }
        this.wake = null;
        return true;
      };
      if (this.pending === null && this.fatal === null) this.resumeDecoder();
      if (!check()) this.wake = check;
    });
    return this.bounded(frame, waitingFor);
  }

  /** `frame` as the one type this step allows; ABORT rejects with the peer's reason. */
  expect<T extends FrameType>(frame: ControlFrame, type: T): Extract<ControlFrame, { type: T }> {
    if (frame.type === FrameType.Abort) throw new FerryError(frame.code, frame.message, { remote: true });
    if (frame.type !== type) {
      const got = FRAME_NAMES.get(frame.type) ?? `0x${frame.type.toString(16)}`;
      throw new FerryError('ERR_UNEXPECTED_FRAME', `unexpected ${got} frame during the secure handshake (expected ${FRAME_NAMES.get(type) ?? type})`);
    }
    return frame as Extract<ControlFrame, { type: T }>;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(bytes);
  }

  /**
   * Sends `lastFrame` (the receiver's SECURE) and hands the socket to TLS,
   * once sure the peer sent nothing beyond its last handshake frame. Our
   * listeners come off and the socket is paused first, so node's TLS takes
   * over the socket's handle directly and no byte is read in between.
   */
  async startTls(role: 'client' | 'server', psk: Buffer, lastFrame?: Buffer): Promise<TLSSocket> {
    if (this.pending || this.decoder.buffered > 0 || this.socket.readableLength > 0) {
      throw new FerryError('ERR_UNEXPECTED_FRAME', `${this.peer} sent bytes after the last handshake frame`);
    }
    if (lastFrame) this.write(lastFrame);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.pause();
    this.phase = Phase.Tls;

    const secured = role === 'server' ? acceptTls(this.socket, psk, this.timeoutMs) : connectTls(this.socket, psk);
    this.tlsSocket = secured.socket;
    const tlsSocket = await this.bounded(secured.done, 'the TLS handshake');
    this.tlsSocket = tlsSocket;
    // Stays on for good: an error between our return and the caller's first
    // listener must not crash the process (the caller still sees 'close').
    tlsSocket.on('error', () => {});
    // A session keyed by our PSK resumes it (TLS 1.3 treats external PSKs like
    // resumption); one authenticated any other way is not ours, whatever it proves.
    if (!tlsSocket.isSessionReused() || tlsSocket.getProtocol() !== 'TLSv1.3') {
      throw new FerryError('ERR_TRANSFER', `${this.peer}: the TLS session is not keyed by the code`);
    }
    this.phase = Phase.Done;
    this.dispose();
    return tlsSocket;
  }

  /**
   * Ends the handshake after `err`: tells the peer with an ABORT when the
   * peer did not cause the failure itself and plaintext still flows, then
   * closes. Returns `err` as a FerryError, to be thrown.
   */
  fail(err: unknown): FerryError {
    const error = toFerryError(err);
    if (this.phase === Phase.Failed || this.phase === Phase.Done) return error;
    const plain = this.phase === Phase.Plain;
    this.phase = Phase.Failed;
    this.dispose();
    if (!plain) {
      // Off OpenSSL's stack (see settle()), TLS socket first: node 20 crashes the
      // other way round. Destroying the plain socket covers a server-side TLS socket
      // not yet known here.
      setImmediate(() => {
        this.tlsSocket?.destroy();
        this.socket.destroy();
      });
    } else if (!error.remote && error.code !== 'ERR_CONNECTION_LOST' && !this.socket.destroyed && !this.socket.writableEnded) {
      // Keep reading (and dropping) meanwhile: closing with unread input sends a
      // reset, and the peer would see "connection reset" instead of our reason.
      this.socket.write(encodeAbort(error.code, error.message));
      this.socket.end();
      setTimeout(() => this.socket.destroy(), ABORT_GRACE_MS).unref();
    } else {
      this.socket.destroy();
    }
    return error;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase !== Phase.Plain) return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.setFatal(toFerryError(err));
    }
    this.wake?.();
  };

  private readonly onEnd = (): void => {
    this.setEnded(new FerryError('ERR_CONNECTION_LOST', `${this.peer} closed the connection during the secure handshake`));
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.setEnded(new FerryError('ERR_CONNECTION_LOST', `connection to ${this.peer} lost during the secure handshake: ${err.code ?? err.message}`, { cause: err }));
  };

  private readonly onAbort = (): void => {
    this.setFatal(abortError(this.signal));
  };

  private resumeDecoder(): void {
    try {
      this.decoder.resume();
    } catch (err) {
      this.setFatal(toFerryError(err));
    }
  }

  private setFatal(err: FerryError): void {
    this.fatal ??= err;
    for (const interrupt of [...this.interrupts]) interrupt(err);
    this.wake?.();
  }

  private setEnded(err: FerryError): void {
    if (this.ended || this.phase !== Phase.Plain) return;
    this.ended = err;
    // Frames that arrived before the end are read first (an ABORT explains the close).
    if (this.pending === null && this.decoder.buffered === 0) {
      for (const interrupt of [...this.interrupts]) interrupt(err);
    }
    this.wake?.();
  }

  private dispose(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.wake = null;
  }
}

const TLS_SETTINGS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: TLS_CIPHERS,
} as const;

/** A TLS handshake under way: the socket when it exists already, and its outcome. */
interface SecuredTls {
  socket: TLSSocket | null;
  done: Promise<TLSSocket>;
}

/**
 * 'secure' and friends fire on OpenSSL's stack, and microtasks run before it
 * unwinds: a caller that then destroyed the plain socket and the TLS one (in
 * that order) would free the SSL object under OpenSSL, a segfault in node 20.
 * Handing the socket over a macrotask later keeps every caller off that stack.
 */
function settle(resolve: (socket: TLSSocket) => void, socket: TLSSocket): void {
  setImmediate(resolve, socket);
}

/**
 * Receiver: TLS server over the plain socket, through a tls.Server that never
 * listens (the documented way to inject a connection). Unlike a bare
 * `new TLSSocket({ isServer: true })`, a socket a server hands over reports
 * TLS errors after the handshake (a tampered record) as 'error' events.
 */
function acceptTls(socket: Socket, psk: Buffer, timeoutMs: number): SecuredTls {
  const server = createTlsServer({
    ...TLS_SETTINGS,
    handshakeTimeout: timeoutMs,
    // No certificate: a handshake that does not use our PSK cannot complete.
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? psk : null),
  });
  const peer = formatPeer(socket.remoteAddress, socket.remotePort);
  const done = new Promise<TLSSocket>((resolve, reject) => {
    server.once('secureConnection', (tlsSocket: TLSSocket) => settle(resolve, tlsSocket));
    server.once('tlsClientError', (err: NodeJS.ErrnoException) => reject(tlsFailure(err, peer)));
  });
  server.emit('connection', socket);
  return { socket: null, done };
}

/** Sender: TLS client over the plain socket. */
function connectTls(socket: Socket, psk: Buffer): SecuredTls {
  const tlsSocket = tlsConnect({
    socket,
    ...TLS_SETTINGS,
    // No SNI: there is no name to protect or announce.
    servername: '',
    pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
    // Only called for a certificate-authenticated (non-PSK) session: never ours.
    checkServerIdentity: () => new Error('ferry expects a session keyed by the code, not a certificate'),
  });
  const peer = formatPeer(socket.remoteAddress, socket.remotePort);
  const done = new Promise<TLSSocket>((resolve, reject) => {
    tlsSocket.once('secureConnect', () => settle(resolve, tlsSocket));
    tlsSocket.once('error', (err: NodeJS.ErrnoException) => reject(tlsFailure(err, peer)));
    tlsSocket.once('close', () => reject(new FerryError('ERR_CONNECTION_LOST', `${peer} closed the connection during the TLS handshake`)));
  });
  return { socket: tlsSocket, done };
}

function tlsFailure(err: NodeJS.ErrnoException, peer: string): FerryError {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
    return new FerryError('ERR_CONNECTION_LOST', `connection to ${peer} lost during the TLS handshake: ${err.code}`, { cause: err });
  }
  return new FerryError('ERR_TRANSFER', `TLS handshake with ${peer} failed: ${err.code ?? err.message}`, { cause: err });
}
