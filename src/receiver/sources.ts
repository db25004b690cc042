/**
 * Where a receiver's connections come from (docs/protocol.md, section 1):
 *
 *   listenSource  its own port: senders dial it (`ferry receive`)
 *   RelayRoom     a room at a relay: one connection always waits there,
 *                 and the next is opened as soon as one pairs (`--relay`)
 *   FromSender    a sender that listens (`--from`): the receiver dials it
 *
 * A source hands each connection on: to the accept path (src/accept.ts:
 * admission, the secure handshake as server, the CodeGuard) when a stranger
 * may be at the other end of it, or, for --from, where the receiver is the
 * secure client, to a session once its own handshake succeeded.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventListener } from '../events.js';
import { exitCodeOf } from '../exit-codes.js';
import { FerryError, toFerryError } from '../protocol/errors.js';
import { RELAY_GIVE_UP_MS, Seat, redialDelayMs, relayName, type RelayOptions } from '../relay/client.js';
import { RECEIVER_SIDE } from '../relay/wire.js';
import { secureClient } from '../secure/index.js';
import { dial } from '../sender/dial.js';
import { ADMISSION_LIMITS } from './admission.js';

/** Where a receiver waits, for its listening event. */
export type Whereabouts = { host: string; port: number } | { relay: string };

export interface SessionSource {
  readonly where: Whereabouts;
  /** No new connections for now: a --once receiver's sender arrived. */
  hold(): void;
  /** Connections again: a fetch whose session was cut waits for its sender to come back. */
  reopen(): void;
  close(): void;
}

/** The receiver's own port; the server's 'connection' goes to the accept path. */
export function listenSource(server: Server, where: { host: string; port: number }): SessionSource {
  return {
    where,
    hold: () => server.close(),
    reopen: () => {},
    close: () => server.close(),
  };
}

/** Makes the receiver's server; node closes connections beyond maxConnections before we see them. */
export function receiverServer(accept: (socket: Socket) => void, maxSessions: number, slack: number): Server {
  const server = createServer(accept);
  server.maxConnections = ADMISSION_LIMITS.total + maxSessions + slack;
  return server;
}

interface LoopDeps {
  timeoutMs: number;
  emit: EventListener;
  /** The source cannot go on (the relay is gone for good, a final refusal): the receiver stops with this. */
  failed(err: FerryError): void;
}

/**
 * A source that connects out (to a relay, or to a sender) in a loop of its
 * own: running while connections are wanted, held while a --once receiver
 * has its sender, stopped for good on close().
 */
abstract class OutgoingSource implements SessionSource {
  abstract readonly where: Whereabouts;
  private running = false;
  protected closed = false;
  protected readonly stop = new AbortController();
  /** Counts reopen()s: a loop from before a hold() that is still sleeping must not run on beside the new one. */
  private generation = 0;

  hold(): void {
    this.running = false;
  }

  reopen(): void {
    if (this.closed || this.running) return;
    this.running = true;
    const generation = ++this.generation;
    void this.loop(() => this.running && !this.closed && this.generation === generation);
  }

  close(): void {
    this.closed = true;
    this.stop.abort(new FerryError('ERR_SHUTDOWN', 'the receiver is shutting down'));
    this.hold();
  }

  /** Connects until `live()` turns false (held or closed), handing each connection on. */
  protected abstract loop(live: () => boolean): Promise<void>;
}

/**
 * Keeps one connection waiting in room `nameplate` as the receiver's side.
 * When it pairs, the socket goes to the accept path and the next seat is
 * taken at once, so several senders in turn, and a sender's retries, find
 * the receiver there. A relay that closes the seat or cannot be reached is
 * re-dialled with backoff, into the same room, for up to RELAY_GIVE_UP_MS.
 */
export class RelayRoom extends OutgoingSource {
  readonly where: Whereabouts;
  private readonly relay: RelayOptions;
  private readonly nameplate: number;
  private readonly accept: (socket: Socket) => void;
  private readonly deps: LoopDeps;
  private seat: Seat | null;
  /** Bounds the first pairing when the sender waits there already (receive --relay --code). */
  private firstWaitMs: number | undefined;

  constructor(relay: RelayOptions, first: Seat | number, accept: (socket: Socket) => void, deps: LoopDeps & { firstWaitMs?: number }) {
    super();
    this.relay = { ...relay, signal: this.stop.signal };
    this.where = { relay: relayName(relay) };
    this.seat = typeof first === 'number' ? null : first;
    this.nameplate = typeof first === 'number' ? first : first.nameplate;
    this.accept = accept;
    this.deps = deps;
    this.firstWaitMs = deps.firstWaitMs;
    this.reopen();
  }

  override hold(): void {
    super.hold();
    this.seat?.leave();
    this.seat = null;
  }

  protected async loop(live: () => boolean): Promise<void> {
    let failures = 0;
    let reachedAt = performance.now();
    while (live()) {
      let waitMs: number | undefined;
      try {
        const seat = this.seat ?? (await Seat.join(this.relay, RECEIVER_SIDE, this.nameplate));
        if (!live()) {
          seat.leave();
          return;
        }
        this.seat = seat;
        failures = 0;
        reachedAt = performance.now();
        waitMs = this.firstWaitMs;
        this.firstWaitMs = undefined;
        const socket = await seat.paired(waitMs, this.relay.signal);
        this.seat = null;
        this.accept(socket);
      } catch (caught) {
        this.seat = null;
        if (!live()) return;
        const err = toFerryError(caught);
        // Not a relay, or nobody where the code said: no re-dial cures that.
        if (err.code === 'ERR_RELAY' || (err.code === 'ERR_TIMEOUT' && waitMs !== undefined)) {
          this.deps.failed(err);
          return;
        }
        failures++;
        if (performance.now() - reachedAt > RELAY_GIVE_UP_MS) {
          this.deps.failed(new FerryError(err.code, `${err.message}; gave up after ${RELAY_GIVE_UP_MS / 60_000} minutes`, { cause: err }));
          return;
        }
        const delayMs = redialDelayMs(failures);
        if (failures === 1) this.report(err, delayMs);
        try {
          await sleep(delayMs, undefined, { signal: this.stop.signal });
        } catch {
          return;
        }
      }
    }
  }

  private report(err: FerryError, delayMs: number): void {
    const message = `${err.message}; rejoining room ${this.nameplate} at the relay in ${delayMs / 1000} s`;
    this.deps.emit({ event: 'error', code: err.code, message, exitCode: exitCodeOf(err.code) });
  }
}

/**
 * --from: dials the sender, runs the secure handshake as its client, and
 * hands the TLS socket to a session. After a cut, reopen() dials again
 * (with backoff) so the sender's next attempt resumes.
 */
export class FromSender extends OutgoingSource {
  readonly where: Whereabouts;
  private readonly target: { host: string; port: number };
  private readonly code: string | undefined;
  private readonly start: (socket: Socket) => void;
  private readonly deps: LoopDeps;
  private dialled = false;

  constructor(target: { host: string; port: number }, code: string | undefined, start: (socket: Socket) => void, deps: LoopDeps) {
    super();
    this.target = target;
    this.where = target;
    this.code = code;
    this.start = start;
    this.deps = deps;
  }

  protected async loop(live: () => boolean): Promise<void> {
    const first = !this.dialled;
    this.dialled = true;
    for (let failures = 0; live(); ) {
      try {
        const socket = await dial({ ...this.target, timeoutMs: this.deps.timeoutMs, signal: this.stop.signal, expecting: '`ferry send --listen`' });
        const secured =
          this.code === undefined
            ? socket
            : await secureClient(socket, this.code, { timeoutMs: this.deps.timeoutMs, signal: this.stop.signal, peerRole: 'sender' });
        this.hold();
        this.start(secured);
        return;
      } catch (caught) {
        if (this.closed) return;
        const err = toFerryError(caught);
        // The first dial fails at once, as `send --to` does; a wrong code is final whenever it comes.
        if (first || !RETRY_DIAL.has(err.code)) {
          this.hold();
          this.deps.failed(err);
          return;
        }
        failures++;
        try {
          await sleep(redialDelayMs(failures), undefined, { signal: this.stop.signal });
        } catch {
          return;
        }
      }
    }
  }
}

const RETRY_DIAL: ReadonlySet<string> = new Set(['ERR_CONNECT', 'ERR_TIMEOUT', 'ERR_CONNECTION_LOST', 'ERR_TRUNCATED', 'ERR_BUSY']);
