/**
 * How long a connection waits on its peer (docs/protocol.md, section 4,
 * rule 6), as one object: the idle deadline (a byte at least every
 * timeout), the frame deadline (a control frame whole within the timeout of
 * its first byte), and bounded waits (an answer within a given time, which
 * only real progress extends). Each expiry calls `expire` with the
 * ERR_TIMEOUT to end the connection with.
 */
import { FerryError } from './protocol/errors.js';

/** The longest pause of a doubling backoff: a peer that stays away costs a connect every 16 s. */
export const MAX_BACKOFF_MS = 16_000;

/**
 * The pause before try `step + 1` (0-based) of a doubling backoff from
 * `firstMs`, capped at MAX_BACKOFF_MS: a sender's retries (sender/retry.ts)
 * and a relay client's re-dials (relay/client.ts).
 */
export function backoffMs(step: number, firstMs: number): number {
  return Math.min(firstMs * 2 ** step, MAX_BACKOFF_MS);
}

export interface DeadlineHooks {
  /** Ends the connection. */
  expire(err: FerryError): void;
  /** True while this side, not the peer, is what is waited for (disk, hashing, a paused sink). */
  excused(): boolean;
}

export class Deadlines {
  readonly timeoutMs: number;
  private readonly peer: string;
  private readonly hooks: DeadlineHooks;
  private readonly idle: NodeJS.Timeout;
  private frame: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(timeoutMs: number, peer: string, hooks: DeadlineHooks) {
    this.timeoutMs = timeoutMs;
    this.peer = peer;
    this.hooks = hooks;
    this.idle = setTimeout(() => this.onIdle(), timeoutMs);
  }

  /** Bytes came from the peer, or our writes drained: it is alive. */
  heard(): void {
    if (!this.stopped) this.idle.refresh();
  }

  /**
   * Whether the peer is part-way through a control frame right now (and not
   * merely held up by us): the frame deadline runs from the first such byte.
   */
  partialFrame(partial: boolean): void {
    if (this.stopped) return;
    if (!partial) {
      if (this.frame) clearTimeout(this.frame);
      this.frame = null;
      return;
    }
    this.frame ??= setTimeout(() => {
      this.frame = null;
      this.hooks.expire(new FerryError('ERR_TIMEOUT', `${this.peer} took over ${seconds(this.timeoutMs)} to send one frame`));
    }, this.timeoutMs);
  }

  /**
   * A wait that must end within `ms`, whatever else arrives meanwhile.
   * `extend()` starts the bound again (for real progress); `clear()` ends it.
   */
  bounded(ms: number, what: string): { extend(): void; clear(): void } {
    const timer = setTimeout(() => this.hooks.expire(new FerryError('ERR_TIMEOUT', `${this.peer} sent no answer ${what} within ${seconds(ms)}`)), ms);
    return { extend: () => timer.refresh(), clear: () => clearTimeout(timer) };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.idle);
    if (this.frame) clearTimeout(this.frame);
  }

  private onIdle(): void {
    if (this.stopped) return;
    if (this.hooks.excused()) {
      this.idle.refresh();
      return;
    }
    this.hooks.expire(new FerryError('ERR_TIMEOUT', `no word from ${this.peer} for ${seconds(this.timeoutMs)}`));
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
