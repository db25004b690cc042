/**
 * Rooms and nameplates (docs/protocol.md sections 10.3 and 10.4): who waits
 * under which token, which pairs are made, and which numbers are held.
 * No sockets and no timers: the clock is injected, holds expire when asked.
 */
import type { Clock } from '../rate-limit.js';
import { NAMEPLATE_MAX, roomToken } from './wire.js';

/** A connection that sent its line and waits for a partner. */
export interface Waiter {
  readonly side: string;
}

interface Hold {
  /** Connections in the room, waiting or paired. */
  connections: number;
  /** When the last of them closed (meaningful while `connections` is 0). */
  releasedAt: number;
}

export class Rooms<W extends Waiter> {
  /** Waiting connections by token, oldest first. */
  private readonly rooms = new Map<string, W[]>();
  private waitingCount = 0;
  /** The nameplate each nameplate token stands for. */
  private readonly nameplates = new Map<string, number>();
  private readonly holds = new Map<number, Hold>();
  private readonly graceMs: number;
  private readonly now: Clock;

  constructor(graceMs: number, now: Clock) {
    this.graceMs = graceMs;
    this.now = now;
    for (let n = 1; n <= NAMEPLATE_MAX; n++) this.nameplates.set(roomToken(n), n);
  }

  get waiting(): number {
    return this.waitingCount;
  }

  /** The nameplate a token is the room of, if it is one. */
  nameplateOf(token: string): number | undefined {
    return this.nameplates.get(token);
  }

  /**
   * The smallest nameplate no room holds, or null when all are held. The
   * caller joins its room at once (`join(roomToken(n), ...)`), which holds it.
   */
  allocate(): number | null {
    const now = this.now();
    for (let n = 1; n <= NAMEPLATE_MAX; n++) {
      const hold = this.holds.get(n);
      if (hold === undefined) return n;
      if (hold.connections === 0 && now - hold.releasedAt >= this.graceMs) {
        this.holds.delete(n);
        return n;
      }
    }
    return null;
  }

  /**
   * A connection enters the room of `token`: paired with the oldest waiter
   * of another side if there is one (returned, and no longer waiting), else
   * it waits. Waiters of the same side stay waiting side by side, so many
   * senders can wait for one receiver.
   */
  join(token: string, waiter: W): W | null {
    this.hold(token);
    const room = this.rooms.get(token);
    const index = room?.findIndex((w) => w.side !== waiter.side) ?? -1;
    if (room !== undefined && index !== -1) {
      const [partner] = room.splice(index, 1);
      this.waitingCount--;
      if (room.length === 0) this.rooms.delete(token);
      return partner!;
    }
    if (room === undefined) this.rooms.set(token, [waiter]);
    else room.push(waiter);
    this.waitingCount++;
    return null;
  }

  /** Whether a connection of `side` joining `token` now would be paired rather than wait. */
  wouldPair(token: string, side: string): boolean {
    return this.rooms.get(token)?.some((w) => w.side !== side) ?? false;
  }

  /** A connection that joined `token` closed, waiting or paired. */
  leave(token: string, waiter: W): void {
    const room = this.rooms.get(token);
    const index = room?.indexOf(waiter) ?? -1;
    if (room !== undefined && index !== -1) {
      room.splice(index, 1);
      this.waitingCount--;
      if (room.length === 0) this.rooms.delete(token);
    }
    const n = this.nameplates.get(token);
    const hold = n === undefined ? undefined : this.holds.get(n);
    if (hold !== undefined && --hold.connections === 0) hold.releasedAt = this.now();
  }

  private hold(token: string): void {
    const n = this.nameplates.get(token);
    if (n === undefined) return;
    const hold = this.holds.get(n);
    if (hold === undefined) this.holds.set(n, { connections: 1, releasedAt: 0 });
    else hold.connections++;
  }
}
