/**
 * The bandwidth limit (--limit-rate): a token bucket over DATA payload
 * bytes, one home for both sides. The sender takes tokens before it writes
 * a DATA frame and waits out any debt (paceWrite); the receiver takes them
 * after it has read a piece and, when in debt, stops reading from that
 * connection until the debt is paid (throttleReads), which backpressures the
 * sender through TCP. A receiver has one bucket for all its sessions.
 *
 * A take may go into debt: a piece already read cannot be un-read, and a
 * frame larger than the bucket must still go. Nothing is handed on while
 * the bucket is in debt, so the bytes handed on by time t never exceed
 * burst + rate x t, plus the one piece that made the debt.
 */

import { FerryError } from './protocol/errors.js';

/** Milliseconds, from any fixed origin. Injected in tests. */
export type Clock = () => number;

/**
 * Below this the waits get longer than the peers' timeouts allow: a 64 KiB
 * eager file (MAX_EAGER_BYTES) or a 64 KiB socket read is 4 s of tokens at
 * 16 KiB/s, well inside the default 30 s timeout of the other side, which
 * hears nothing meanwhile.
 */
export const MIN_RATE = 16 * 1024;

/** The burst is this much of a second of traffic... */
const BURST_SECONDS = 0.1;
/**
 * ...but at least one TLS record (16 KiB), so that a frame is never cut
 * below what TLS sends in one piece anyway and slow rates do not wake up
 * more than a few times a second; and at most the default chunk (1 MiB),
 * so that fast rates keep ferry's usual frame size.
 */
const MIN_BURST = 16 * 1024;
const MAX_BURST = 1024 * 1024;

/**
 * The burst for `rate`: a tenth of a second of it, within [16 KiB, 1 MiB].
 * Small, because a limit is there to leave the link to others: any window
 * of T seconds carries at most rate x T + burst, so from a second up the
 * rate seen is within a tenth of the limit, and an idle spell does not save
 * up for a flood afterwards (curl's --limit-rate and rsync's --bwlimit
 * behave alike, sleeping per write).
 */
export function burstFor(rate: number): number {
  return Math.min(MAX_BURST, Math.max(MIN_BURST, Math.floor(rate * BURST_SECONDS)));
}

export class RateLimiter {
  /** Bytes per second. */
  readonly rate: number;
  /** The most bytes that may go at once after an idle spell. */
  readonly burst: number;
  private readonly now: Clock;
  /** Negative while in debt. */
  private tokens: number;
  private last: number;

  constructor(rate: number, options: { burst?: number; now?: Clock } = {}) {
    if (!(Number.isFinite(rate) && rate > 0)) throw new RangeError(`rate ${rate} out of range`);
    this.rate = rate;
    this.burst = options.burst ?? burstFor(rate);
    this.now = options.now ?? (() => performance.now());
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Takes `bytes` tokens, into debt if need be; returns the milliseconds until the debt is paid (0: none). */
  take(bytes: number): number {
    this.refill();
    this.tokens -= bytes;
    return this.debtMs();
  }

  /** Milliseconds until the bucket is out of debt (0: it is). */
  delay(): number {
    this.refill();
    return this.debtMs();
  }

  private debtMs(): number {
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  private refill(): void {
    const t = this.now();
    // A clock that steps back (it should not: performance.now) gives nothing rather than debt.
    const elapsed = Math.max(0, t - this.last);
    this.last = t;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }
}

/**
 * The limiter for a `limitRate` option of send() or receive(): none when
 * absent, ERR_USAGE when it is no whole number of bytes per second of at
 * least MIN_RATE.
 */
export function rateLimiter(limitRate: number | undefined): RateLimiter | undefined {
  if (limitRate === undefined) return undefined;
  if (!(Number.isSafeInteger(limitRate) && limitRate >= MIN_RATE)) {
    throw new FerryError('ERR_USAGE', `the rate limit must be a whole number of bytes per second, at least ${MIN_RATE} (16K), not ${limitRate}`);
  }
  return new RateLimiter(limitRate);
}

/**
 * Sender side: takes the tokens for `bytes`, then waits out any debt before
 * the caller writes them. Rejects with the connection's error if it fails
 * meanwhile, so a dead connection does not sleep out its debt.
 */
export async function paceWrite(limiter: RateLimiter | undefined, bytes: number, failed: Promise<never>): Promise<void> {
  if (!limiter) return;
  const ms = limiter.take(bytes);
  if (ms === 0) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), failed]);
  } finally {
    clearTimeout(timer);
  }
}

/** What throttleReads needs of a connection (src/connection.ts). */
export interface Throttled {
  pauseData(reason: 'rate'): void;
  resumeData(reason: 'rate'): void;
  readonly closed: Promise<void>;
}

/**
 * Receiver side, one per connection: returns the function its DATA handlers
 * call with each piece's length once the piece is read. In debt, reading
 * stops until the shared bucket is out of debt again (checked again when the
 * timer fires, since other sessions may have taken tokens meanwhile).
 */
export function throttleReads(conn: Throttled, limiter: RateLimiter): (bytes: number) => void {
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    const ms = limiter.delay();
    if (ms > 0) {
      timer = setTimeout(check, ms);
      return;
    }
    timer = undefined;
    conn.resumeData('rate');
  };
  void conn.closed.then(() => clearTimeout(timer));
  return (bytes) => {
    const ms = limiter.take(bytes);
    // Already paused: the pieces of one socket read still being delivered add to the debt, one timer waits for it all.
    if (ms === 0 || timer !== undefined) return;
    conn.pauseData('rate');
    timer = setTimeout(check, ms);
  };
}

/**
 * Parses a rate as --limit-rate takes it: bytes per second, with an
 * optional binary suffix (K = 1024, M, G; any case, an optional B and /s):
 * `500K`, `1.5M`, `2g`, `65536`. Returns undefined when it is not one.
 */
export function parseRate(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|b)?(?:\/s)?\s*$/i.exec(text);
  if (!m) return undefined;
  const scale = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const bytes = Math.floor(Number(m[1]) * scale);
  return Number.isFinite(bytes) ? bytes : undefined;
}
