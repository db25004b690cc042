/**
 * `ferry relay`: pairs two connections that name the same room from
 * different sides, and forwards bytes between them (docs/protocol.md
 * section 10). It never sees a name, a byte of content or the code: the
 * ferry peers run SPAKE2 and TLS through it end to end (docs/security.md
 * section 11). Nothing is written to disk.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Clock } from '../rate-limit.js';
import { listen } from '../accept.js';
import { RELAY_LIMITS, SourceBudget, type RelayLimits } from './limits.js';
import { rateLimitedLog, roomLabel, type RefusalReason, type RelayEventListener } from './log.js';
import { Pair, type PairEnd } from './pair.js';
import { Rooms } from './rooms.js';
import {
  RELAY_BAD,
  RELAY_BUSY,
  RELAY_DEFAULT_PORT,
  RELAY_IMPATIENT,
  RELAY_MAX_LINE,
  RELAY_OK,
  nameplateLine,
  parseRelayRequest,
  roomToken,
  type RelayRequest,
} from './wire.js';

/** A refused connection may linger this long, reading and dropping, so its answer is not lost to a reset. */
const LINGER_MS = 2000;
/** Beyond the connection budget, for sockets lingering after a refusal (node drops the rest unseen). */
const BACKSTOP_SLACK = 1024;
/** Waiting connections are probed, so a peer that vanished does not hold its room for the whole wait. */
const KEEPALIVE_MS = 60_000;

export interface RelayOptions {
  /** Address to listen on. Default: all interfaces, IPv6 and IPv4. */
  host?: string;
  /** Default RELAY_DEFAULT_PORT (7879); 0 lets the OS choose. */
  port?: number;
  /** Any of the limits of src/relay/limits.ts; the rest keep their defaults (RELAY_LIMITS). */
  limits?: Partial<RelayLimits>;
  /** Milliseconds, for the nameplate grace period and the pair rate. Default performance.now; injected in tests. */
  now?: Clock;
  /** Log events: listening, each pairing, each pair's end, each refusal (rate-limited). */
  onEvent?: RelayEventListener;
  /** Aborting closes the relay and every connection. */
  signal?: AbortSignal;
}

export interface RelayStats {
  /** Open connections, in every state. */
  connections: number;
  /** Connections waiting for a partner. */
  waiting: number;
  pairs: number;
  /** Directions paused because their destination does not read (backpressure at work). */
  stalled: number;
  /** Directions paused to keep their pair under `pairRate`. */
  throttled: number;
  /** Bytes queued in the relay for all pairs now. */
  buffered: number;
  /** The largest write queue any pair's destination held at once, since the relay started. */
  peakBuffered: number;
}

export interface Relay {
  /** The address actually bound ('::' for all interfaces). */
  readonly host: string;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  stats(): RelayStats;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

const enum State {
  /** Connected, reading the request line. */
  Line,
  /** Sent a valid line; waits in a room for a partner. */
  Waiting,
  /** Forwarding to its partner. */
  Paired,
  /** Answered and lingering, or gone. */
  Done,
}

class Client {
  state = State.Line;
  side = '';
  token = '';
  timer: NodeJS.Timeout | undefined;
  readonly since = performance.now();
  readonly socket: Socket;
  readonly source: string;
  /** Counted in the source budget (until its close, or its eviction). */
  holdsSlot = true;
  /** Listener of the Line and Waiting states, removed on pairing. */
  listener: ((chunk: Buffer) => void) | undefined;

  constructor(socket: Socket, source: string) {
    this.socket = socket;
    this.source = source;
  }

  clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Starts a relay; resolves once it is listening. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay> {
  const relay = new RelayServer(options);
  await relay.listen(options.host, options.port ?? RELAY_DEFAULT_PORT);
  return relay;
}

/** One relay: its connections from the first byte to the last, its rooms, its pairs. */
class RelayServer implements Relay {
  host = '';
  port = 0;
  private readonly limits: RelayLimits;
  private readonly emit: RelayEventListener;
  private readonly budget: SourceBudget;
  private readonly now: Clock;
  private readonly rooms: Rooms<Client>;
  private readonly pairs = new Set<Pair>();
  private readonly sockets = new Set<Socket>();
  /** Connections that have not sent their line yet, oldest first: the ones closed to make room. */
  private readonly silent = new Set<Client>();
  private readonly server: Server;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort = (): void => void this.close();
  private peakBuffered = 0;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: RelayOptions) {
    this.limits = { ...RELAY_LIMITS, ...options.limits };
    this.emit = rateLimitedLog(options.onEvent ?? (() => {}));
    this.budget = new SourceBudget(this.limits);
    this.now = options.now ?? (() => performance.now());
    this.rooms = new Rooms<Client>(this.limits.graceMs, this.now);
    this.signal = options.signal;
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.maxConnections = this.limits.total + BACKSTOP_SLACK;
    this.server.on('error', () => {});
  }

  async listen(host: string | undefined, port: number): Promise<void> {
    const address = await listen(this.server, host, port);
    this.host = address.host;
    this.port = address.port;
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (this.signal?.aborted) this.onAbort();
    this.emit({ event: 'listening', host: address.host, port: address.port });
  }

  stats(): RelayStats {
    let buffered = 0;
    let stalled = 0;
    let throttled = 0;
    let peak = this.peakBuffered;
    for (const pair of this.pairs) {
      buffered += pair.buffered;
      stalled += pair.stalled;
      throttled += pair.throttled;
      peak = Math.max(peak, pair.peakBuffered);
    }
    return { connections: this.budget.size, waiting: this.rooms.waiting, pairs: this.pairs.size, stalled, throttled, buffered, peakBuffered: peak };
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.closing = true;
      this.signal?.removeEventListener('abort', this.onAbort);
      this.server.close(() => resolve());
      for (const pair of this.pairs) pair.close();
      for (const socket of this.sockets) socket.destroy();
    });
    return this.closed;
  }

  private accept(socket: Socket): void {
    const { limits } = this;
    this.sockets.add(socket);
    socket.on('error', () => {});
    if (this.closing) {
      socket.destroy();
      return;
    }
    let { source, refused } = this.budget.admit(socket.remoteAddress);
    if (refused !== undefined && this.evict(source, refused)) ({ source, refused } = this.budget.admit(socket.remoteAddress));
    if (refused !== undefined) {
      socket.on('close', () => this.sockets.delete(socket));
      const held = refused === 'per-source' ? `${source} already holds ${limits.perSource} connections` : `all ${limits.total} connections are taken`;
      return this.refuse(socket, RELAY_BUSY, refused, source, held);
    }
    const client = new Client(socket, source);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    this.silent.add(client);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.freeSlot(client);
      client.clearTimer();
      // A paired client leaves its room when its pair ends.
      if (client.state === State.Waiting) this.rooms.leave(client.token, client);
      if (client.state !== State.Paired) client.state = State.Done;
    });
    // Before pairing a FIN means the client is gone (the transit relay reads it so too): nothing is left to wait for.
    socket.on('end', () => {
      if (client.state === State.Line || client.state === State.Waiting) socket.destroy();
    });
    client.listener = this.lineReader(client);
    socket.on('data', client.listener);
    client.timer = setTimeout(() => this.refuse(socket, RELAY_BAD, 'slow-line', source, `sent no request within ${limits.lineMs / 1000} s`, client), limits.lineMs);
  }

  /** Reads the request line; any byte beyond it before pairing is impatience. */
  private lineReader(client: Client): (chunk: Buffer) => void {
    let line = Buffer.alloc(0);
    return (chunk) => {
      const { socket, source } = client;
      if (client.state === State.Waiting) return this.refuse(socket, RELAY_IMPATIENT, 'impatient', source, 'sent bytes before its partner came', client);
      line = Buffer.concat([line, chunk]);
      const newline = line.indexOf(0x0a);
      if (newline === -1 || newline + 1 > RELAY_MAX_LINE) {
        if (line.length >= RELAY_MAX_LINE) this.refuse(socket, RELAY_BAD, 'long-line', source, `no newline within ${RELAY_MAX_LINE} bytes`, client);
        return;
      }
      const request = parseRelayRequest(line.subarray(0, newline + 1).toString('latin1'));
      if (request === null) return this.refuse(socket, RELAY_BAD, 'bad-handshake', source, 'sent no relay request', client);
      if (line.length > newline + 1) return this.refuse(socket, RELAY_IMPATIENT, 'impatient', source, 'sent bytes after its request', client);
      this.silent.delete(client);
      client.clearTimer();
      this.enter(client, request);
    };
  }

  /** A valid request: allocate if asked, then into the room. */
  private enter(client: Client, request: RelayRequest): void {
    const { socket, source } = client;
    const { limits, rooms } = this;
    let token: string;
    if (request.kind === 'allocate') {
      if (rooms.waiting >= limits.waiting) return this.refuse(socket, RELAY_BUSY, 'waiting', source, `all ${limits.waiting} waiting places are taken`, client);
      const n = rooms.allocate();
      if (n === null) return this.refuse(socket, RELAY_BUSY, 'no-nameplate', source, 'every nameplate is held', client);
      socket.write(nameplateLine(n));
      token = roomToken(n);
    } else {
      token = request.token;
      if (rooms.waiting >= limits.waiting && !rooms.wouldPair(token, request.side)) {
        return this.refuse(socket, RELAY_BUSY, 'waiting', source, `all ${limits.waiting} waiting places are taken`, client);
      }
    }
    client.side = request.side;
    client.token = token;
    client.state = State.Waiting;
    const partner = rooms.join(token, client);
    if (partner !== null) return this.pairUp(partner, client);
    client.timer = setTimeout(() => this.refuse(socket, null, 'wait-timeout', source, `no partner within ${limits.waitMs / 1000} s`, client), limits.waitMs);
  }

  /** `a` waited in the room, `b` just came. */
  private pairUp(a: Client, b: Client): void {
    const { limits } = this;
    const token = a.token;
    const nameplate = this.rooms.nameplateOf(token);
    const tag = { room: roomLabel(token), ...(nameplate === undefined ? {} : { nameplate }) };
    for (const c of [a, b]) {
      c.state = State.Paired;
      c.clearTimer();
      c.socket.off('data', c.listener!);
      c.socket.write(RELAY_OK);
    }
    const started = performance.now();
    const pair = new Pair(a.socket, b.socket, { idleMs: limits.pairIdleMs, bytes: limits.pairBytes, rate: limits.pairRate, now: this.now }, (how: PairEnd) => {
      this.pairs.delete(pair);
      this.peakBuffered = Math.max(this.peakBuffered, pair.peakBuffered);
      for (const c of [a, b]) {
        c.state = State.Done;
        this.rooms.leave(token, c);
      }
      const seconds = (performance.now() - started) / 1000;
      this.emit({ event: 'unpaired', ...tag, bytes: pair.bytes, seconds, reason: how, message: `room ${tag.room}: ${pair.bytes} bytes in ${seconds.toFixed(1)} s, ${how}` });
    });
    this.pairs.add(pair);
    const waitedSeconds = (started - Math.min(a.since, b.since)) / 1000;
    this.emit({ event: 'paired', ...tag, sources: [a.source, b.source], waitedSeconds, message: `room ${tag.room}: paired ${a.source} (waiting) with ${b.source}` });
  }

  /** Answers (or just closes), logs, and lets the socket linger so the answer is not lost to a reset. */
  private refuse(socket: Socket, answer: string | null, reason: RefusalReason, source: string, message: string, client?: Client): void {
    if (client) {
      this.silent.delete(client);
      client.state = State.Done;
      client.clearTimer();
      if (client.token !== '') this.rooms.leave(client.token, client);
    }
    this.emit({ event: 'refused', reason, source, ...(client?.token ? { room: roomLabel(client.token) } : {}), message: `${source}: ${message}` });
    socket.removeAllListeners('data');
    socket.resume();
    if (answer === null) socket.end();
    else socket.end(answer);
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }

  /**
   * Makes room for a newcomer from `source` when its limit is full, as the
   * receiver's admission does: closes the oldest connection that has sent
   * no line yet, of the same source when the source is full, else of the
   * source holding the most. Connections that sent their line are never
   * closed for another.
   */
  private evict(source: string, refused: 'per-source' | 'total'): boolean {
    let victim: Client | undefined;
    let most = 0;
    for (const c of this.silent) {
      if (refused === 'per-source' && c.source !== source) continue;
      const held = this.budget.held(c.source);
      if (held > most) [victim, most] = [c, held];
      if (refused === 'per-source') break;
    }
    if (victim === undefined) return false;
    const why = refused === 'per-source' ? `${this.limits.perSource} per source` : `${this.limits.total} in all`;
    this.refuse(victim.socket, RELAY_BUSY, 'evicted', victim.source, `closed to make room (${why}): it had sent no request`, victim);
    this.freeSlot(victim);
    victim.socket.destroy();
    return true;
  }

  private freeSlot(client: Client): void {
    this.silent.delete(client);
    if (client.holdsSlot) this.budget.release(client.source);
    client.holdsSlot = false;
  }
}
