/**
 * What one relay gives its clients (docs/protocol.md section 10.5), and the
 * budget of connections per source and in total. Every limit is an option
 * of startRelay() and a flag of `ferry relay`.
 */
import { sourceKey } from '../secure/index.js';

export interface RelayLimits {
  /**
   * Connections one source (IPv4 address, IPv6 /64) may hold, whatever
   * their state. A household behind one router runs a receiver and a few
   * senders; a script may run dozens of pairs at once. 128 is the
   * receiver's unauthenticated budget per source too. A full source makes
   * room by closing its own oldest connection that has sent no line.
   */
  perSource: number;
  /**
   * Connections in all. A paired connection holds at most about 130 KiB in
   * the relay (a socket read of 64 KiB and a write queue up to 64 KiB; see
   * pair.ts), so 4096 connections stay under 600 MiB whatever clients send.
   */
  total: number;
  /** Connections waiting for a partner, in all rooms together. */
  waiting: number;
  /** The request line must arrive within this long of connecting (the transit relay's clients send it at once). */
  lineMs: number;
  /**
   * How long a connection may wait for its partner. Long, because a person
   * reads the code to another person; a ferry client re-dials after it.
   */
  waitMs: number;
  /**
   * A nameplate stays held this long after its room's last connection
   * closed, so that a receiver re-joining for its next sender, or a pair
   * re-joining after a drop, finds its number still its own.
   */
  graceMs: number;
  /** A pair with no byte either way for this long is closed (ferry peers speak every 30 s at the most). */
  pairIdleMs: number;
  /** Bytes a pair may forward, both directions together; undefined: no limit. */
  pairBytes: number | undefined;
  /** Bytes per second a pair may forward, both directions together; undefined: no limit. */
  pairRate: number | undefined;
}

export const RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  perSource: 128,
  total: 4096,
  waiting: 2048,
  lineMs: 5000,
  waitMs: 10 * 60_000,
  graceMs: 10 * 60_000,
  pairIdleMs: 10 * 60_000,
  pairBytes: undefined,
  pairRate: undefined,
});

export type Refusal = 'per-source' | 'total';

/** Counts connections per source and in total; a connection is admitted or refused on arrival (server.ts makes room first). */
export class SourceBudget {
  private readonly perSource = new Map<string, number>();
  private count = 0;
  private readonly limits: Pick<RelayLimits, 'perSource' | 'total'>;

  constructor(limits: Pick<RelayLimits, 'perSource' | 'total'>) {
    this.limits = limits;
  }

  get size(): number {
    return this.count;
  }

  /** The source key of `address` once admitted, or the limit it would pass. */
  admit(address: string | undefined): { source: string; refused?: Refusal } {
    const source = sourceKey(address);
    const held = this.perSource.get(source) ?? 0;
    if (held >= this.limits.perSource) return { source, refused: 'per-source' };
    if (this.count >= this.limits.total) return { source, refused: 'total' };
    this.perSource.set(source, held + 1);
    this.count++;
    return { source };
  }

  /** Connections `source` holds now. */
  held(source: string): number {
    return this.perSource.get(source) ?? 0;
  }

  release(source: string): void {
    const left = (this.perSource.get(source) ?? 1) - 1;
    if (left === 0) this.perSource.delete(source);
    else this.perSource.set(source, left);
    this.count--;
  }
}
