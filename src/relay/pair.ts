/**
 * Two paired connections, forwarded both ways untouched (docs/protocol.md
 * section 10.6). Backpressure as ws does it: a source is paused while its
 * destination's write queue is over its high-water mark and resumed on
 * 'drain', so the relay holds at most one socket read plus one write queue
 * per direction, whatever the clients send. A half-close is forwarded; an
 * error, a reset or a limit ends both.
 */
import type { Socket } from 'node:net';
import { RateLimiter, type Clock } from '../rate-limit.js';

export type PairEnd = 'closed' | 'error' | 'idle' | 'bytes' | 'shutdown';

export interface PairLimits {
  idleMs: number;
  bytes: number | undefined;
  rate: number | undefined;
  /** The rate limit's clock (milliseconds); default performance.now. */
  now?: Clock;
}

type PauseReason = 'drain' | 'rate';

export class Pair {
  /** Bytes forwarded, both directions. */
  bytes = 0;
  /** The largest write queue either destination held at once: what a flood costs the relay. */
  peakBuffered = 0;
  private ended: PairEnd | undefined;
  private readonly sockets: readonly [Socket, Socket];
  private readonly limits: PairLimits;
  private readonly limiter: RateLimiter | undefined;
  private readonly paused = new Map<Socket, Set<PauseReason>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly onEnd: (how: PairEnd) => void;
  private closedClean = 0;

  constructor(a: Socket, b: Socket, limits: PairLimits, onEnd: (how: PairEnd) => void) {
    this.sockets = [a, b];
    this.limits = limits;
    this.limiter = limits.rate === undefined ? undefined : new RateLimiter(limits.rate, limits.now ? { now: limits.now } : {});
    this.onEnd = onEnd;
    this.forward(a, b);
    this.forward(b, a);
  }

  /** Bytes the relay holds for this pair now: both write queues. */
  get buffered(): number {
    return this.sockets[0].writableLength + this.sockets[1].writableLength;
  }

  /** Directions paused now because their destination is not taking bytes (0, 1 or 2). */
  get stalled(): number {
    return this.pausedFor('drain');
  }

  /** Directions paused now to keep the pair under its rate. */
  get throttled(): number {
    return this.pausedFor('rate');
  }

  private pausedFor(reason: PauseReason): number {
    let n = 0;
    for (const reasons of this.paused.values()) if (reasons.has(reason)) n++;
    return n;
  }

  /** Ends both connections at once. */
  close(how: PairEnd = 'shutdown'): void {
    this.end(how);
  }

  private forward(from: Socket, to: Socket): void {
    this.paused.set(from, new Set());
    from.setTimeout(this.limits.idleMs, () => this.end('idle'));
    from.on('data', (chunk: Buffer) => this.data(from, to, chunk));
    // The peer will send no more: pass its FIN on, behind what it sent.
    from.on('end', () => to.end());
    // Errors arrive again as a 'close' that is not clean.
    from.on('error', () => {});
    from.on('close', () => {
      // Already ended (the byte limit lets one side finish on its own): nothing to add.
      if (this.ended !== undefined) return;
      // Clean: both halves closed in order (node closes a socket once it has read and sent its FIN).
      if (!(from.readableEnded && from.writableFinished)) this.end('error');
      else if (++this.closedClean === 2) this.settle('closed');
    });
  }

  private data(from: Socket, to: Socket, chunk: Buffer): void {
    if (this.ended !== undefined) return;
    const room = this.limits.bytes === undefined ? Infinity : this.limits.bytes - this.bytes;
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.bytes += piece.length;
    const open = piece.length === 0 || to.write(piece);
    this.peakBuffered = Math.max(this.peakBuffered, to.writableLength);
    if (piece.length < chunk.length) {
      this.overLimit(to);
      return;
    }
    if (!open) {
      this.pause(from, 'drain');
      to.once('drain', () => this.resume(from, 'drain'));
    }
    const wait = this.limiter?.take(piece.length) ?? 0;
    if (wait > 0) {
      this.pause(from, 'rate');
      this.after(wait, from);
    }
  }

  /** Resumes `from` once the bucket is out of debt; both directions share it, so it is checked again when the wait is over. */
  private after(ms: number, from: Socket): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const more = this.limiter!.delay();
      if (more > 0) this.after(more, from);
      else this.resume(from, 'rate');
    }, ms);
    this.timers.add(timer);
  }

  /** The byte limit is reached: `to` gets what fits and a FIN, then both close. */
  private overLimit(to: Socket): void {
    const other = to === this.sockets[0] ? this.sockets[1] : this.sockets[0];
    this.settle('bytes');
    other.destroy();
    to.end(() => to.destroy());
  }

  private pause(socket: Socket, reason: PauseReason): void {
    this.paused.get(socket)!.add(reason);
    socket.pause();
  }

  private resume(socket: Socket, reason: PauseReason): void {
    const reasons = this.paused.get(socket)!;
    reasons.delete(reason);
    if (reasons.size === 0 && this.ended === undefined) socket.resume();
  }

  /** Settles (if not yet) and closes both at once: also what the idle limit does to a side left finishing after the byte limit. */
  private end(how: PairEnd): void {
    this.settle(how);
    for (const socket of this.sockets) socket.destroy();
  }

  private settle(how: PairEnd): void {
    if (this.ended !== undefined) return;
    this.ended = how;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.onEnd(how);
  }
}
