/**
 * A ferry peer's side of a relay (docs/protocol.md, section 1.2): one TCP
 * connection to the relay, one line to take a seat in a room, and the
 * relay's `ok\n` once the peer of the other role sits down. From then on the
 * socket is the peer's, as if dialled directly: the secure handshake and the
 * session run on it unchanged.
 *
 * Nothing the relay says is printed: an answer other than the documented
 * lines is ERR_RELAY, in ferry's own words.
 */
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '../deadlines.js';
import { FerryError, abortError } from '../protocol/errors.js';
import { dial } from '../sender/dial.js';
import { RELAY_BAD, RELAY_MAX_LINE, RELAY_OK, allocateLine, parseNameplate, randomNameplate, relayLine, roomToken } from './wire.js';

export interface RelayOptions {
  host: string;
  port: number;
  /** Bounds the connect and each answer the relay owes at once (not the wait for a peer). */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * ferry's relay when a limit is full (docs/protocol.md, section 10.4): not
 * this client's fault, so it is ERR_BUSY, which a sender retries and a
 * waiting receiver re-dials after. (RELAY_BUSY in wire.ts on branch relay.)
 */
const BUSY = 'busy\n';

/**
 * A waiting connection: idle TCP through a home router or a relay's load
 * balancer is cut silently after minutes; keepalive notices a dead relay
 * within about a minute and a half instead of never.
 */
const KEEPALIVE_MS = 30_000;

/**
 * A re-dial after a failure waits this long, doubling up to the cap: a relay
 * restarting comes back within seconds, and one that stays away costs a
 * connect attempt every 16 s.
 */
export const REDIAL_FIRST_MS = 1000;
/**
 * A receiver that cannot reach its relay for this long gives up (ERR_CONNECT
 * or the relay's error): as long as a relay keeps a nameplate held after the
 * room empties, so its code never outlives its room.
 */
export const RELAY_GIVE_UP_MS = 10 * 60_000;

export function redialDelayMs(failures: number): number {
  return backoffMs(Math.max(0, failures - 1), REDIAL_FIRST_MS);
}

/** A connection sitting in a room of the relay, not yet paired. */
export class Seat {
  readonly nameplate: number;
  private readonly socket: Socket;
  private readonly reader: LineReader;
  private readonly where: string;

  private constructor(socket: Socket, reader: LineReader, nameplate: number, where: string) {
    this.socket = socket;
    this.reader = reader;
    this.nameplate = nameplate;
    this.where = where;
    socket.setKeepAlive(true, KEEPALIVE_MS);
  }

  /**
   * Joins room `nameplate` as `side`. The transit relay says nothing until a
   * peer comes, so this resolves once the line is written.
   */
  static async join(relay: RelayOptions, side: string, nameplate: number): Promise<Seat> {
    const socket = await dialRelay(relay);
    socket.write(relayLine(roomToken(nameplate), side));
    return new Seat(socket, new LineReader(socket, relayName(relay)), nameplate, relayName(relay));
  }

  /**
   * Asks the relay for a free room and sits in it (ferry's relay answers
   * `nameplate N\n`). A relay that does not allocate (the transit relay
   * answers `bad handshake\n` and closes) gets a second connection that
   * joins a room picked at random.
   */
  static async allocate(relay: RelayOptions, side: string): Promise<Seat> {
    const socket = await dialRelay(relay);
    socket.write(allocateLine(side));
    const reader = new LineReader(socket, relayName(relay));
    const line = await reader.line(relay.timeoutMs, relay.signal);
    if (line === RELAY_BAD || line === null) {
      // null: it closed without a word, which a relay that does not know the line may do too.
      socket.destroy();
      return Seat.join(relay, side, randomNameplate());
    }
    const nameplate = parseNameplate(line);
    if (nameplate === null) {
      socket.destroy();
      throw line === BUSY ? busy(relayName(relay)) : notRelay(relayName(relay), 'a room number');
    }
    return new Seat(socket, reader, nameplate, relayName(relay));
  }

  /**
   * Waits for the relay's `ok\n` (a peer of the other side sat down) and
   * hands over the socket with the peer's first bytes, if any came with it,
   * still unread. `waitMs` bounds the wait (ERR_TIMEOUT); without it, only
   * the signal and the connection do.
   */
  async paired(waitMs: number | undefined, signal: AbortSignal | undefined): Promise<Socket> {
    let line: string | null;
    try {
      line = await this.reader.line(waitMs, signal, () => new FerryError('ERR_TIMEOUT', `nobody came to room ${this.nameplate} at the relay ${this.where} in ${(waitMs ?? 0) / 1000} s`));
    } catch (err) {
      this.socket.destroy();
      throw err;
    }
    if (line === null) throw new FerryError('ERR_CONNECTION_LOST', `the relay ${this.where} closed the connection before a peer came to room ${this.nameplate}`);
    if (line !== RELAY_OK) {
      this.socket.destroy();
      throw line === BUSY ? busy(this.where) : notRelay(this.where, '"ok"');
    }
    this.reader.release();
    return this.socket;
  }

  leave(): void {
    this.socket.destroy();
  }
}

/** A relay as HOST:PORT ([IPV6]:PORT), as the listening event names it. */
export function relayName(relay: { host: string; port: number }): string {
  return relay.host.includes(':') ? `[${relay.host}]:${relay.port}` : `${relay.host}:${relay.port}`;
}

function dialRelay(relay: RelayOptions): Promise<Socket> {
  return dial({ host: relay.host, port: relay.port, timeoutMs: relay.timeoutMs, signal: relay.signal, expecting: 'a relay' });
}

function busy(at: string): FerryError {
  return new FerryError('ERR_BUSY', `the relay ${at} is full; try again later`);
}

function notRelay(at: string, expected: string): FerryError {
  return new FerryError('ERR_RELAY', `the relay ${at} answered something other than ${expected}: not a ferry or transit relay, or not a working one`);
}

/**
 * Reads the relay's lines in paused mode (socket.read()), so that once the
 * last line is read nothing else is consumed: the bytes after it go back
 * into the socket (unshift) for whoever reads it next.
 */
class LineReader {
  private readonly socket: Socket;
  private readonly at: string;
  private held = Buffer.alloc(0);
  private ended = false;
  private failure: FerryError | null = null;
  private wake: (() => void) | null = null;
  private readonly onReadable = (): void => this.poke();
  private readonly onEnd = (): void => {
    this.ended = true;
    this.poke();
  };
  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.failure ??= new FerryError('ERR_CONNECTION_LOST', `connection to the relay ${this.at} lost: ${err.code ?? err.message}`, { cause: err });
    this.poke();
  };

  constructor(socket: Socket, at: string) {
    this.socket = socket;
    this.at = at;
    socket.on('readable', this.onReadable);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** The next line with its newline; null when the relay closed first. */
  async line(waitMs: number | undefined, signal: AbortSignal | undefined, timedOut?: () => FerryError): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    let stop: FerryError | null = null;
    const onAbort = (): void => {
      stop = abortError(signal);
      this.poke();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    if (waitMs !== undefined) {
      timer = setTimeout(() => {
        stop = timedOut?.() ?? new FerryError('ERR_TIMEOUT', `the relay ${this.at} did not answer in ${waitMs / 1000} s`);
        this.poke();
      }, waitMs);
    }
    try {
      for (;;) {
        if (stop) throw stop;
        const chunk = this.socket.read() as Buffer | null;
        if (chunk !== null) this.held = Buffer.concat([this.held, chunk]);
        const newline = this.held.indexOf(0x0a);
        if (newline !== -1 && newline < RELAY_MAX_LINE) {
          const line = this.held.subarray(0, newline + 1).toString('latin1');
          this.held = this.held.subarray(newline + 1);
          return line;
        }
        // Longer than any answer, with or without its newline: not a relay. Nothing of it is shown.
        if (this.held.length >= RELAY_MAX_LINE) throw notRelay(this.at, 'one of its short lines');
        if (this.failure) throw this.failure;
        if (this.ended) return null;
        if (chunk === null) await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Stops reading; bytes read past the last line go back into the socket. */
  release(): void {
    this.socket.off('readable', this.onReadable);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    if (this.held.length > 0) this.socket.unshift(this.held);
    this.held = Buffer.alloc(0);
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/** A seat lost these ways may be taken again; anything else (ERR_RELAY, a signal) is final. */
const REJOINABLE: ReadonlySet<string> = new Set(['ERR_CONNECTION_LOST', 'ERR_CONNECT', 'ERR_TIMEOUT', 'ERR_BUSY']);

/**
 * Waits in `seat`'s room for a peer as long as it takes (a side that went
 * first): when the relay drops the seat (an idle limit, a restart), a new
 * one is taken in the same room, after redialDelayMs(), until the relay has
 * been out of reach for RELAY_GIVE_UP_MS.
 */
export async function pairedPatiently(relay: RelayOptions, side: string, first: Seat): Promise<Socket> {
  let seat: Seat | null = first;
  let reachedAt = performance.now();
  for (let failures = 0; ; ) {
    try {
      seat ??= await Seat.join(relay, side, first.nameplate);
      reachedAt = performance.now();
      return await seat.paired(undefined, relay.signal);
    } catch (err) {
      seat = null;
      const e = err instanceof FerryError ? err : new FerryError('ERR_CONNECTION_LOST', String(err));
      if (relay.signal?.aborted || !REJOINABLE.has(e.code)) throw e;
      if (performance.now() - reachedAt > RELAY_GIVE_UP_MS) throw e;
      await sleep(redialDelayMs(++failures), undefined, { signal: relay.signal }).catch(() => {
        throw abortError(relay.signal);
      });
    }
  }
}
