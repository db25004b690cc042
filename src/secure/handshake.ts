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
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ABORT_GRACE_MS, formatPeer } from '../connection.js';
import { FrameType, FRAME_NAMES } from '../protocol/constants.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { FerryError, abortError, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeAbort, encodeFrame, type ControlFrame } from '../protocol/messages.js';
import { normalizeCode } from './code.js';
import { sourceKey, type Attempt, type CodeGuard } from './limiter.js';
import { cachedScalar } from './password.js';
import { checkShare, spake2Finish, spake2Start, tagsEqual } from './spake2.js';
import { acceptTls, connectTls, tlsPsk } from './tls.js';

export interface HandshakeOptions {
  /** Bound on every wait of the handshake (each frame, the password hash, the TLS handshake). */
  timeoutMs: number;
  /** Aborting fails the handshake with abortError(signal); the peer is told with an ABORT. */
  signal?: AbortSignal;
  /** Bound on the whole handshake, from the first byte to TLS (receiver: see src/receiver/admission.ts). */
  totalMs?: number;
  /** Called once, when the peer's first whole frame has arrived. */
  onFirstFrame?: () => void;
  /** Receiver: called with true when the handshake starts waiting for a limiter token, false when that ends. */
  onWaiting?: (waiting: boolean) => void;
  /**
   * The peer's part in the transfer, for messages. The roles follow the TCP
   * direction, not the files: by default the client's peer is the receiver
   * and the server's the sender, but `receive --from` is a client whose peer
   * sends and `send --listen` a server whose peer receives.
   */
  peerRole?: 'sender' | 'receiver';
}

/**
 * Bytes a side may have received beyond the frame it is waiting for. The
 * sender never has a second frame in flight towards the receiver, so the
 * receiver allows none: a peer cannot make it buffer anything while it
 * waits for a token. The receiver sends pB and cB in one write (74 + 41
 * bytes), so the sender allows a few KiB.
 */
const SLACK_BYTES = { server: 0, client: 4096 } as const;

/** Sender: PAKE + TLS over a connected socket; resolves to the TLS socket ferry frames then run in. */
export async function secureClient(socket: Socket, code: string, options: HandshakeOptions): Promise<TLSSocket> {
  let password: string;
  try {
    password = normalizeCode(code);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const hs = new Handshake(socket, 'client', options);
  try {
    const w = await hs.bounded(cachedScalar(password), 'the password hash');
    const state = spake2Start('A', w);
    hs.write(encodeFrame(FrameType.Pake, state.share));
    const first = await hs.next('PAKE');
    // The peer's words are not repeated, and nothing here advises --insecure:
    // a fake receiver answering HELLO must not talk the user into plaintext.
    if (first.type === FrameType.Hello) throw new FerryError('ERR_INSECURE_MISMATCH', `the ${peerOf('client', options)} answered without encryption (it has no code); nothing was transferred`);
    const keys = spake2Finish(state, hs.expect(first, FrameType.Pake).share);
    const confirm = hs.expect(await hs.next('CONFIRM'), FrameType.Confirm);
    if (!tagsEqual(confirm.tag, keys.cB)) throw new FerryError('ERR_BAD_CODE', `wrong code: the ${peerOf('client', options)}'s code differs`);
    hs.write(encodeFrame(FrameType.Confirm, keys.cA));
    hs.expect(await hs.next('SECURE'), FrameType.Secure);
    return await hs.startTls('client', tlsPsk(keys.Ke));
  } catch (err) {
    throw hs.fail(err);
  }
}

/**
 * Receiver: PAKE + TLS over an accepted socket, checked against `guard`'s
 * code and limiter. The share is checked before anything else is spent on
 * it (a decode and a point comparison); a refused share is charged like a
 * wrong code. Then the handshake waits its turn for a token (limiter.ts).
 */
export async function secureServer(socket: Socket, guard: CodeGuard, options: HandshakeOptions): Promise<TLSSocket> {
  const hs = new Handshake(socket, 'server', options);
  let attempt: Attempt | null = null;
  let exposed = false;
  try {
    const first = await hs.next('PAKE');
    if (first.type === FrameType.Hello) {
      throw new FerryError('ERR_INSECURE_MISMATCH', 'this receiver requires a code; run the sender with --code, or both sides with --insecure');
    }
    const share = hs.expect(first, FrameType.Pake).share;
    const check = await hs.bounded(guard.shareCheck(), 'the password hash');
    try {
      checkShare(check, share);
    } catch (err) {
      guard.charge();
      throw err;
    }
    options.onWaiting?.(true);
    try {
      attempt = await takeToken(hs, guard, sourceKey(socket.remoteAddress));
    } finally {
      options.onWaiting?.(false);
    }
    const state = spake2Start('B', check.w);
    const keys = spake2Finish(state, share, undefined, check);
    hs.write(Buffer.concat([encodeFrame(FrameType.Pake, state.share), encodeFrame(FrameType.Confirm, keys.cB)]));
    exposed = true;
    const confirm = hs.expect(await hs.next('CONFIRM'), FrameType.Confirm);
    if (!tagsEqual(confirm.tag, keys.cA)) throw new FerryError('ERR_BAD_CODE', `wrong code: the ${peerOf('server', options)}'s code differs`);
    attempt.settle(false);
    return await hs.startTls('server', tlsPsk(keys.Ke), encodeFrame(FrameType.Secure));
  } catch (err) {
    // Ctrl-C here is not the peer's guess: only a peer that saw pB and then failed spends the token.
    attempt?.settle(exposed && options.signal?.aborted !== true);
    throw hs.fail(err);
  }
}

/** Who the peer is in the transfer (HandshakeOptions.peerRole). */
function peerOf(role: 'client' | 'server', options: HandshakeOptions): 'sender' | 'receiver' {
  return options.peerRole ?? (role === 'client' ? 'receiver' : 'sender');
}

/** The handshake's token, in its source's turn; a wait the bounds cut short, or a full queue, is ERR_RATE_LIMITED. */
async function takeToken(hs: Handshake, guard: CodeGuard, source: string): Promise<Attempt> {
  const limited = (): FerryError => {
    const seconds = Math.max(1, Math.ceil(guard.retryAfterMs() / 1000));
    return new FerryError('ERR_RATE_LIMITED', `too many wrong codes or waiting handshakes; try again in ${seconds} s`);
  };
  const ticket = guard.acquire(source);
  let attempt: Attempt | null;
  try {
    attempt = await hs.bounded(ticket.attempt, 'a handshake token');
  } catch (err) {
    ticket.cancel();
    throw toFerryError(err).code === 'ERR_TIMEOUT' ? limited() : err;
  }
  if (attempt === null) throw limited();
  return attempt;
}

/**
 * A peer's ABORT before authentication, in ferry's own words chosen by its
 * status: whoever sent it may be a stranger, and its text (escapes, forged
 * lines) never reaches a terminal or a log.
 */
function remoteAbort(code: ErrorCode, peerRole: 'sender' | 'receiver'): FerryError {
  const peer = `the ${peerRole}`;
  const why = ABORT_WORDS[code] ?? '{peer} ended the handshake';
  return new FerryError(code, `${why.replaceAll('{peer}', peer)} (${code})`, { remote: true });
}

const ABORT_WORDS: Partial<Record<ErrorCode, string>> = {
  ERR_BAD_CODE: '{peer} refused the code: it does not match',
  ERR_RATE_LIMITED: '{peer} refused the code: too many wrong codes were tried',
  ERR_INSECURE_MISMATCH: '{peer} does not use a code for this transfer; nothing was sent',
  ERR_BUSY: '{peer} is busy',
  ERR_TIMEOUT: '{peer} stopped waiting',
  ERR_SHUTDOWN: '{peer} is shutting down',
};

const enum Phase {
  Plain,
  Tls,
  Done,
  Failed,
}

/**
 * One side's socket during the handshake: frames in one at a time, every wait
 * bounded by the timeout, the signal and the connection, and the hand-over to
 * TLS. Frames are decoded one at a time (the decoder pauses after each), and
 * bytes beyond the frame awaited (more than SLACK_BYTES) fail the handshake
 * at once, so a peer cannot park data in our memory before it is authenticated.
 */
class Handshake {
  private readonly socket: Socket;
  private readonly role: 'client' | 'server';
  private readonly peerRole: 'sender' | 'receiver';
  private readonly slack: number;
  private readonly timeoutMs: number;
  private onFirstFrame: (() => void) | undefined;
  private deadline: NodeJS.Timeout | undefined;
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

  constructor(socket: Socket, role: 'client' | 'server', options: HandshakeOptions) {
    this.socket = socket;
    this.role = role;
    this.peerRole = peerOf(role, options);
    this.slack = SLACK_BYTES[role];
    this.timeoutMs = options.timeoutMs;
    this.signal = options.signal;
    this.onFirstFrame = options.onFirstFrame;
    this.peer = formatPeer(socket.remoteAddress, socket.remotePort);
    this.decoder = new FrameDecoder({
      onFrame: (frame) => {
        this.pending = frame;
        this.decoder.pause();
        const first = this.onFirstFrame;
        this.onFirstFrame = undefined;
        first?.();
      },
      onData: () => {
        throw new FerryError('ERR_UNEXPECTED_FRAME', 'unexpected DATA frame during the secure handshake');
      },
    });
    if (options.totalMs !== undefined) {
      const seconds = Number((options.totalMs / 1000).toFixed(3));
      this.deadline = setTimeout(() => this.setFatal(new FerryError('ERR_TIMEOUT', `${this.peer}: the secure handshake took longer than ${seconds} s`)), options.totalMs);
    }
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

  /** `frame` as the one type this step allows; ABORT rejects with the peer's status, in our words. */
  expect<T extends FrameType>(frame: ControlFrame, type: T): Extract<ControlFrame, { type: T }> {
    if (frame.type === FrameType.Abort) throw remoteAbort(frame.code, this.peerRole);
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
    // After a failure, input is read and dropped (the ABORT is on its way).
    if (this.phase !== Phase.Plain || this.fatal) return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.setFatal(toFerryError(err));
    }
    // Lock-step: whatever came beyond the frame waited on is refused, not buffered.
    if (this.fatal === null && this.decoder.isPaused && this.decoder.buffered > this.slack) {
      this.setFatal(new FerryError('ERR_UNEXPECTED_FRAME', `${this.peer} sent more than the one handshake frame awaited`));
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
    clearTimeout(this.deadline);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.wake = null;
  }
}
