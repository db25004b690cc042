/**
 * The sessions a receiver is running, and the --once rule: the first
 * connection that says HELLO owns a --once receiver, the others are closed,
 * and its end is the receiver's end.
 */
import type { ReceiverConnection } from '../connection.js';
import type { FerryError } from '../protocol/errors.js';
import type { SessionEnd } from './session.js';

/** How long closing lets sessions tidy up (delete temp files) before it stops waiting. */
const CLOSE_GRACE_MS = 5000;

export class Sessions {
  private readonly running = new Map<ReceiverConnection, Promise<SessionEnd>>();
  private owner: ReceiverConnection | null = null;
  private readonly once: boolean;
  private readonly hooks: { claimed(): void; ownerDone(end: SessionEnd): void; oneAtATime?: boolean };

  /** `claimed`: a --once receiver found its sender (stop accepting); `ownerDone`: that sender's session ended, as `end` says. */
  constructor(once: boolean, hooks: { claimed(): void; ownerDone(end: SessionEnd): void; oneAtATime?: boolean }) {
    this.once = once;
    this.hooks = hooks;
  }

  get size(): number {
    return this.running.size;
  }

  /** True once a --once receiver has its sender: nobody else gets in. */
  get taken(): boolean {
    return this.once && this.owner !== null;
  }

  /** Runs `session` over `conn` until it ends. */
  add(conn: ReceiverConnection, session: Promise<SessionEnd>): void {
    this.running.set(conn, session);
    void session.then((end) => {
      this.running.delete(conn);
      // A fetch dials one connection at a time: one that ends before its HELLO ends the wait for it too.
      if (conn === this.owner || (this.hooks.oneAtATime && this.owner === null)) this.hooks.ownerDone(end);
    });
  }

  /** The owner's session was cut and its sender may come back (a fetch): the next HELLO owns the receiver again. */
  release(): void {
    this.owner = null;
  }

  /** `conn` said HELLO: with --once, it becomes the only session. */
  claim(conn: ReceiverConnection): void {
    if (!this.once || this.owner) return;
    this.owner = conn;
    this.hooks.claimed();
    for (const other of this.running.keys()) if (other !== conn) other.destroy();
  }

  /**
   * Aborts every session with `reason` and waits, at most CLOSE_GRACE_MS,
   * for them to delete their temp files and for the ABORTs to reach the
   * senders; then destroys what is left.
   */
  async end(reason: FerryError): Promise<void> {
    const conns = [...this.running.keys()];
    for (const conn of conns) conn.abort(reason);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([Promise.all([...this.running.values(), ...conns.map((c) => c.closed)]), grace]);
    clearTimeout(timer);
    for (const conn of this.running.keys()) conn.destroy();
  }

  /** Settles once every session still running has ended. */
  settled(): Promise<unknown> {
    return Promise.all(this.running.values());
  }
}
