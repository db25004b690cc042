/**
 * Admission of connections that have not authenticated yet (docs/security.md,
 * section 8): their own budget, per source and in total, a short deadline for
 * the first frame, and eviction of silent connections so that strangers
 * holding sockets open cannot lock an honest sender out.
 */
import { sourceKey } from '../secure/index.js';

export const ADMISSION_LIMITS = Object.freeze({
  /**
   * Unauthenticated connections one source (IPv4 address, IPv6 /64) may
   * hold. An honest host may start many transfers at once (a script, the
   * library: the test suite starts 100 from one host), and each sits here
   * through its sender's scrypt (~0.1 s) and its turn for a limiter token;
   * 128 leaves room for that. A full source makes room by closing its own
   * oldest silent connection.
   */
  perSource: 128,
  /**
   * Unauthenticated connections in total: four full sources. Each costs a
   * socket and at most a few KiB of decoder state (about 2 MiB and 512 file
   * descriptors in all); honest traffic never comes near it, handshakes
   * finish in milliseconds. What protects newcomers is eviction, not a small
   * number: when it is full, a silent connection of the source holding the
   * most is closed to make room.
   */
  total: 512,
  /** A ferry peer sends its first frame within a round trip of connecting (the sender after its ~0.1 s scrypt). */
  firstFrameMs: 5000,
  /**
   * The whole secure handshake, first byte to TLS: long enough for a wait
   * of a few refills of the limiter (6 s each) behind other sources.
   */
  handshakeMs: 30_000,
});

/** Authenticated sessions served at once (`maxConnections`): each may hold a file open and write to disk. */
export const DEFAULT_MAX_SESSIONS = 256;

/** Log lines about limits: at most this many per kind and interval, then a count of the rest. */
const LOG_BURST = 5;
const LOG_INTERVAL_MS = 10_000;

const enum Stage {
  /** No whole frame yet: the first to go when room is needed. */
  Silent,
  /** Spoke ferry: kept until it authenticates, fails or times out. */
  Framed,
  /**
   * Spoke ferry and waits for a limiter token: evicted only when no silent
   * connection is left, so a source cannot fill the budget with waits.
   */
  Waiting,
  /** Failed, and only lingers to deliver its ABORT: may go at any time. */
  Ending,
}

interface Entry {
  readonly source: string;
  stage: Stage;
  /** Closes the connection at once. */
  readonly drop: () => void;
  timer: NodeJS.Timeout | undefined;
}

/** One connection's place in the budget. */
export interface Ticket {
  /** The first whole frame arrived. */
  framed(): void;
  /** Waiting for a limiter token (true), or no longer (false). */
  waiting(on: boolean): void;
  /** The handshake failed; the connection only lingers for its ABORT. */
  ending(): void;
  /** Authenticated: the slot is free. */
  authenticated(): void;
  readonly isAuthenticated: boolean;
  /** Closed: the slot is free. */
  release(): void;
  /** True once admission closed the connection itself (its handshake error is not worth a line of its own). */
  readonly dropped: boolean;
}

export class Admission {
  private readonly limits: typeof ADMISSION_LIMITS;
  /** Every unauthenticated connection, oldest first. */
  private readonly entries = new Set<Entry>();
  private readonly perSource = new Map<string, number>();
  readonly log: LogLimiter;

  constructor(report: (kind: string, message: string) => void, limits: Partial<typeof ADMISSION_LIMITS> = {}) {
    this.limits = { ...ADMISSION_LIMITS, ...limits };
    this.log = new LogLimiter(report);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * A slot for a new connection from `address`, making room by evicting if a
   * budget is full; null (close it) when nothing can be evicted, i.e. every
   * slot in the way belongs to a connection that already spoke ferry.
   */
  admit(address: string | undefined, drop: () => void): Ticket | null {
    const source = sourceKey(address);
    if ((this.perSource.get(source) ?? 0) >= this.limits.perSource && !this.evict((e) => e.source === source)) {
      this.log.note('refused', `unauthenticated connections: ${source} already holds ${this.limits.perSource}; refused another`);
      return null;
    }
    if (this.entries.size >= this.limits.total && !this.evict(() => true)) {
      this.log.note('refused', `unauthenticated connections: all ${this.limits.total} slots are in handshakes; refused ${source}`);
      return null;
    }
    let dropped = false;
    let authenticated = false;
    const entry: Entry = {
      source,
      stage: Stage.Silent,
      drop: () => {
        dropped = true;
        drop();
      },
      timer: undefined,
    };
    entry.timer = setTimeout(() => {
      if (entry.stage !== Stage.Silent) return;
      this.log.note('deadline', `unauthenticated connection from ${source} sent no whole frame within ${this.limits.firstFrameMs / 1000} s; closed`);
      this.remove(entry);
      entry.drop();
    }, this.limits.firstFrameMs);
    this.entries.add(entry);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    return {
      framed: () => {
        if (entry.stage === Stage.Silent) entry.stage = Stage.Framed;
        clearTimeout(entry.timer);
      },
      waiting: (on) => {
        if (entry.stage === Stage.Framed || entry.stage === Stage.Waiting) entry.stage = on ? Stage.Waiting : Stage.Framed;
      },
      ending: () => void (entry.stage = Stage.Ending),
      authenticated: () => {
        authenticated = true;
        this.remove(entry);
      },
      release: () => this.remove(entry),
      get isAuthenticated() {
        return authenticated;
      },
      get dropped() {
        return dropped;
      },
    };
  }

  /** Whole-handshake bound for the secure handshake (HandshakeOptions.totalMs). */
  get handshakeMs(): number {
    return this.limits.handshakeMs;
  }

  /**
   * Closes one connection among those `eligible`: one lingering after a
   * failure if any, else the oldest silent one of the source holding the
   * most connections, else likewise one waiting for a limiter token.
   * Connections in the rest of the handshake are never evicted.
   */
  private evict(eligible: (e: Entry) => boolean): boolean {
    const victim = this.pick(eligible, Stage.Ending) ?? this.pick(eligible, Stage.Silent) ?? this.pick(eligible, Stage.Waiting);
    if (!victim) return false;
    // One that already failed is not worth a line: it was said when it failed.
    if (victim.stage !== Stage.Ending) {
      const what = victim.stage === Stage.Silent ? 'a silent connection' : 'a handshake waiting for a token';
      this.log.note('evicted', `unauthenticated connection limit (${this.limits.perSource} per source, ${this.limits.total} in all): closed ${what} from ${victim.source}`);
    }
    this.remove(victim);
    victim.drop();
    return true;
  }

  /** The oldest entry in `stage` of the source holding the most connections. */
  private pick(eligible: (e: Entry) => boolean, stage: Stage): Entry | undefined {
    let victim: Entry | undefined;
    let victimHeld = -1;
    for (const e of this.entries) {
      if (e.stage !== stage || !eligible(e)) continue;
      const held = this.perSource.get(e.source) ?? 0;
      if (held > victimHeld) [victim, victimHeld] = [e, held];
    }
    return victim;
  }

  private remove(entry: Entry): void {
    if (!this.entries.delete(entry)) return;
    clearTimeout(entry.timer);
    const left = (this.perSource.get(entry.source) ?? 1) - 1;
    if (left === 0) this.perSource.delete(entry.source);
    else this.perSource.set(entry.source, left);
  }
}

/**
 * Lines about what strangers do, rate-limited per kind: a flood of
 * connections must not become a flood of log lines. The first LOG_BURST
 * lines of an interval go out; the next line after it says how many were
 * left out.
 */
export class LogLimiter {
  private readonly report: (kind: string, message: string) => void;
  private readonly kinds = new Map<string, { since: number; sent: number; skipped: number }>();

  constructor(report: (kind: string, message: string) => void) {
    this.report = report;
  }

  /** Whether a line of `kind` may go out now; if so, a suffix to append to it (empty, or how many were left out). */
  allow(kind: string): { suffix: string } | null {
    const now = performance.now();
    let k = this.kinds.get(kind);
    let suffix = '';
    if (!k || now - k.since >= LOG_INTERVAL_MS) {
      if (k && k.skipped > 0) suffix = ` (and ${k.skipped} more like it in the last ${LOG_INTERVAL_MS / 1000} s, not shown)`;
      k = { since: now, sent: 0, skipped: 0 };
      this.kinds.set(kind, k);
    }
    if (k.sent >= LOG_BURST) {
      k.skipped++;
      return null;
    }
    k.sent++;
    return { suffix };
  }

  note(kind: string, message: string): void {
    const ok = this.allow(kind);
    if (ok) this.report(kind, message + ok.suffix);
  }
}
