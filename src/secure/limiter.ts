/**
 * The wrong-code limiter (docs/security.md, section 5): one token bucket per
 * code bounds how fast the whole receiver can be guessed at, and the tokens
 * are handed out fairly across source addresses, so a stranger who keeps
 * guessing delays the code holder by about one refill per source address it
 * has, and never locks it out.
 */
import { isIPv4 } from 'node:net';
import { normalizeCode } from './code.js';
import { passwordScalar, shareCheck, type ShareCheck } from './spake2.js';

/** Wrong-code limiter defaults: 5 at once, then one every 6 s (10 a minute sustained). */
export const DEFAULT_RATE_LIMIT = Object.freeze({ burst: 5, refillMs: 6000 });

/**
 * Handshakes one source may have waiting for a refill while no token is
 * held (the bucket was spent by failures: guessing). Two, not one: a sender
 * whose first connection broke may already be dialling again while the
 * receiver still waits on the dead one. More are refused at once. While
 * tokens are held by handshakes in flight, waits are not capped here: those
 * tokens come back within milliseconds when the handshakes succeed, and 100
 * senders started at once from one host must pass a few at a time, not be
 * refused. The round-robin, not the queue length, is what keeps sources
 * fair (each waiting source gets one token per turn), and the admission
 * budget (src/receiver/admission.ts) bounds the queue and may evict from it.
 */
export const MAX_WAITING_PER_SOURCE = 2;

/**
 * Sources remembered for the round-robin: enough for every connection the
 * admission budget lets in at once (src/receiver/admission.ts) many times
 * over; the oldest are forgotten first (they count as never served).
 */
const SERVED_MEMORY = 4096;

/**
 * The key that budgets and the round-robin count by: an IPv4 address (also
 * when it arrives IPv4-mapped on a dual-stack socket), or an IPv6 /64, the
 * smallest prefix a site is normally given: one host can pick any address
 * inside its /64, so counting single IPv6 addresses would count nothing.
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (64:ff9b::1.2.3.4) takes two groups' room.
  const width = (groups: string[]): number => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - width(left) - width(right))).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g || '0', 16).toString(16)).join(':')}::/64`;
}

/** One handshake's claim on the limiter: settle it exactly once. */
export interface Attempt {
  /** `failed`: the peer saw pB and did not prove the code; the token stays spent. Otherwise it is given back. */
  settle(failed: boolean): void;
}

/** A handshake waiting for a token. */
interface Waiter {
  source: string;
  give(attempt: Attempt): void;
}

/**
 * Receiver-side state for one code: the password scalar and the share check,
 * computed once, and the limiter shared by every connection to this receiver.
 *
 * The limiter is a token bucket: `burst` tokens, one more every `refillMs`.
 * A handshake takes a token before the receiver does any work for it that
 * depends on the code, and gives it back unless it fails after pB was sent.
 * Taking the token up front keeps parallel connections from guessing past the
 * limit. A handshake that finds no free token waits in its source's queue; each
 * token given back or refilled goes to the waiting source served longest ago
 * (never-served sources first, in arrival order): a round-robin over sources.
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
  private checkPromise: Promise<ShareCheck> | null = null;
  /** Waiting handshakes per source, sources in arrival order. */
  private readonly queues = new Map<string, Waiter[]>();
  /** When each source was last given a token (a serial number), least recent first. */
  private readonly served = new Map<string, number>();
  private serial = 0;
  /** Tokens taken and not yet settled. */
  private holding = 0;
  private timer: NodeJS.Timeout | null = null;

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

  /** Handshakes charged as failures: wrong code or a peer that gave up after pB, and refused shares. */
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

  /** What a sender's share is checked against (w·M), computed once per code. */
  shareCheck(): Promise<ShareCheck> {
    this.checkPromise ??= this.scalar().then((w) => shareCheck('B', w));
    this.checkPromise.catch(() => (this.checkPromise = null));
    return this.checkPromise;
  }

  /** Milliseconds until a new handshake is allowed; 0 when one is allowed now. */
  retryAfterMs(): number {
    this.refill();
    return Math.max(0, Math.ceil(this.refillMs - this.credit));
  }

  /** @internal A token for one handshake now, or null when none is free (or others wait for one). */
  begin(): Attempt | null {
    this.refill();
    if (this.queues.size > 0 || this.credit < this.refillMs) return null;
    return this.take();
  }

  /**
   * Charges a refused share like a wrong code: it counts as a failure and
   * spends a free token, if there is one nobody waits for. Waiting handshakes
   * are served first, so junk cannot jump the round-robin.
   */
  charge(): void {
    this.failed++;
    this.refill();
    if (this.queues.size === 0 && this.credit >= this.refillMs) this.credit -= this.refillMs;
  }

  /**
   * A token for one handshake from `source` (sourceKey()), now or when the
   * round-robin reaches its source. Resolves null at once when no token is
   * held and that source already has MAX_WAITING_PER_SOURCE handshakes
   * waiting. The caller bounds
   * the wait; `cancel()` gives up the wait, or the token if it came too late.
   */
  acquire(source: string): { attempt: Promise<Attempt | null>; cancel(): void } {
    const now = this.begin();
    if (now) {
      this.markServed(source);
      return { attempt: Promise.resolve(now), cancel: () => now.settle(false) };
    }
    const queue = this.queues.get(source) ?? [];
    if (queue.length >= MAX_WAITING_PER_SOURCE && this.holding === 0) return { attempt: Promise.resolve(null), cancel: () => {} };
    let cancelled = false;
    let got: Attempt | null = null;
    let waiter!: Waiter;
    const attempt = new Promise<Attempt | null>((resolve) => {
      waiter = {
        source,
        give: (a) => {
          got = a;
          if (cancelled) a.settle(false);
          else resolve(a);
        },
      };
    });
    queue.push(waiter);
    this.queues.set(source, queue);
    this.schedule();
    return {
      attempt,
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        if (got) {
          got.settle(false);
          return;
        }
        const waiting = this.queues.get(source);
        const at = waiting?.indexOf(waiter) ?? -1;
        if (waiting && at >= 0) waiting.splice(at, 1);
        if (waiting?.length === 0) this.queues.delete(source);
      },
    };
  }

  private take(): Attempt {
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
        this.dispatch();
      },
    };
  }

  /** Hands free tokens to waiting sources, least recently served first. */
  private dispatch(): void {
    this.refill();
    while (this.queues.size > 0 && this.credit >= this.refillMs) {
      let next: string | undefined;
      let nextServed = Infinity;
      for (const source of this.queues.keys()) {
        const at = this.served.get(source) ?? -1;
        if (at < nextServed) [next, nextServed] = [source, at];
      }
      const queue = this.queues.get(next!)!;
      const waiter = queue.shift()!;
      if (queue.length === 0) this.queues.delete(next!);
      this.markServed(next!);
      waiter.give(this.take());
    }
    this.schedule();
  }

  private markServed(source: string): void {
    this.served.delete(source);
    this.served.set(source, ++this.serial);
    if (this.served.size > SERVED_MEMORY) this.served.delete(this.served.keys().next().value!);
  }

  /** While handshakes wait, wake up when the next token has refilled. */
  private schedule(): void {
    if (this.timer || this.queues.size === 0) return;
    const ms = Math.max(1, Math.ceil(this.refillMs - this.credit));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dispatch();
    }, ms);
    // Every waiter bounds its own wait; the refill timer must not keep a process alive.
    this.timer.unref();
  }

  private refill(): void {
    const now = this.now();
    this.credit = Math.min(this.burst * this.refillMs, this.credit + Math.max(0, now - this.refilledAt));
    this.refilledAt = now;
  }
}
