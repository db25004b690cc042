/**
 * The receiving side: listens, and runs one session per connection, all at
 * once, so a slow or hostile sender never holds up the others.
 */
import type { Server, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { Connection, DEFAULT_TIMEOUT_MS, formatPeer, type ReceiverConnection } from '../connection.js';
import type { EventListener } from '../events.js';
import { ExitCode, exitCodeOf } from '../exit-codes.js';
import { FerryError, abortError, toFerryError } from '../protocol/errors.js';
import { acceptor, listen } from '../accept.js';
import { Seat, type RelayOptions } from '../relay/client.js';
import { RECEIVER_SIDE, RELAY_DEFAULT_PORT } from '../relay/wire.js';
import { CodeGuard, codeNumber, generateCode } from '../secure/index.js';
import { RECEIVER_STATES } from '../protocol/states.js';
import { rateLimiter, throttleReads, type RateLimiter } from '../rate-limit.js';
import { encodeAbort } from '../protocol/messages.js';
import { Admission, DEFAULT_MAX_SESSIONS, type Ticket } from './admission.js';
import { startAnnouncing, type Announcer } from '../discovery/announce.js';
import { startSweeping } from './partials.js';
import { offerChecker, runSession, type SessionContext } from './session.js';
import { Sessions } from './sessions.js';
import { FromSender, RelayRoom, listenSource, receiverServer, type SessionSource } from './sources.js';
import { TargetDir, TargetTree } from './target.js';

export const DEFAULT_PORT = 7878;
/**
 * node closes connections beyond `server.maxConnections` before we see them,
 * silently. Admission (unauthenticated) and the session cap keep the count
 * below this; it remains as a backstop for file descriptors, e.g. for failed
 * handshakes lingering (up to 2 s) to deliver their ABORT.
 */
const BACKSTOP_SLACK = 1024;
/**
 * How long a fetch (--from, or a relay room the sender opened) waits for its
 * sender after a cut: the sender's default retries pause 1 + 2 + 4 + 8 + 16
 * = 31 s in all, and each may take a timeout to find the receiver again.
 */
export const REJOIN_MS = 60_000;
/** Folders a sweep of stale partial files reads at most (`receive --clean` reads all). */
const SWEEP_DIRS = 1000;

export interface ReceiveOptions {
  /** Target folder; must exist. Default '.'. */
  dir?: string;
  /** Address to listen on. Default: all interfaces, IPv6 and IPv4. */
  host?: string;
  /** Default 7878; 0 lets the OS choose (read it from `port` or the listening event). */
  port?: number;
  /** Stop after the first session (the first connection that says HELLO). */
  once?: boolean;
  /** Replace existing files instead of refusing them. */
  overwrite?: boolean;
  /**
   * Replace an existing file when its sender asks (`send --update`, for a
   * file that changed), verified first and atomically. Default false: an
   * existing name is refused (ERR_EXISTS) unless `overwrite`.
   */
  allowUpdate?: boolean;
  /**
   * Accept names that begin with '.' at the top of `dir` (`.ssh/...`,
   * `.bashrc`), and writing into hidden folders that were there before.
   * Default false: a code holder cannot plant those unasked.
   */
  allowHidden?: boolean;
  /** Give up on a silent sender after this long. Default 30 s. */
  timeoutMs?: number;
  /** Refuse files larger than this many bytes. */
  maxSize?: number;
  /** fsync each file before giving it its name. Default true. */
  fsync?: boolean;
  /**
   * The one-time code senders must give (docs/security.md); a fresh one is
   * made when absent. Good for the receiver's lifetime (one transfer with `once`).
   */
  code?: string;
  /** No code, no encryption: plain TCP, for senders that are --insecure too. */
  insecure?: boolean;
  /** Wrong-code limiter: `burst` wrong codes at once, then one per `refillMs` (default 5, 6000). */
  rateLimit?: { burst?: number; refillMs?: number };
  /** Write the one incoming file to this stream (--stdout) instead of into `dir`; implies `once`. */
  stdout?: Writable;
  /**
   * Bandwidth limit for everything this receiver receives, all sessions
   * together: DATA bytes per second, at least 16 KiB (MIN_RATE). Reading
   * pauses while over it, which slows the senders through TCP. Default none.
   */
  limitRate?: number;
  /**
   * Announce this receiver on the LAN about once a second (UDP multicast and
   * broadcast; src/discovery/announce.ts), so that a sender with the code
   * but no address finds it. Never with `insecure`. Default false here (a
   * library sends nothing unasked); the CLI's default is on (--no-announce).
   */
  announce?: boolean;
  /** The UDP port announcements go to. Default 7878 (ANNOUNCE_PORT). */
  announcePort?: number;
  /** Authenticated sessions served at once (default 256); a sender beyond it is told ERR_BUSY and retries. Connections still in the handshake have their own budget (src/receiver/admission.ts). */
  maxConnections?: number;
  onEvent?: EventListener;
  /** Aborting closes the receiver; sessions are told and their temp files deleted. */
  signal?: AbortSignal;
  /**
   * Wait at a relay instead of listening (docs/protocol.md, section 1.2).
   * Without `code`: receiver first, a room is allocated and the code (its
   * number, then fresh words) printed; the receiver serves as on a port.
   * With `code`: sender first, the receiver joins the sender's room and
   * ends with that sender's transfer, as `once` does.
   */
  relay?: { host: string; port?: number };
  /**
   * Dial a sender that listens (`send --listen`) instead of listening: needs
   * `code`. Ends with that sender's transfer; after a cut it dials again so
   * the sender's retry resumes.
   */
  from?: { host: string; port?: number };
}

export interface Receiver {
  /** The address actually bound ('::' for all interfaces); with `relay` or `from`, that one's host. */
  readonly host: string;
  /** The port actually bound (useful with port 0); with `relay` or `from`, that one's port. */
  readonly port: number;
  /** The code senders must give; undefined when insecure. */
  readonly code: string | undefined;
  /**
   * Resolves when the receiver has stopped: with --once, the exit code of
   * that session; after close(), 0, or the code of the abort reason.
   */
  readonly done: Promise<number>;
  /** Stops listening, aborts running sessions (ERR_SHUTDOWN by default), waits for their cleanup. */
  close(reason?: FerryError): Promise<number>;
}

/** Starts a receiver; resolves once it is listening (or seated at its relay). */
export async function receive(options: ReceiveOptions = {}): Promise<Receiver> {
  const dir = options.dir ?? '.';
  checkModes(options);
  // One bucket for every session: the limit is the receiver's, not each sender's.
  const limiter = rateLimiter(options.limitRate);
  // Fetching from one sender (--from, or a relay room the sender opened) ends with that sender, as --once does.
  const fetching = options.from !== undefined || (options.relay !== undefined && options.code !== undefined);
  const once = (options.once ?? false) || options.stdout !== undefined || fetching;
  const userEmit: EventListener = options.onEvent ?? (() => {});
  const started = performance.now();
  const { emit, totals } = counting(userEmit);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const relay = options.relay ? { host: options.relay.host, port: options.relay.port ?? RELAY_DEFAULT_PORT, timeoutMs, signal: options.signal } : undefined;
  const { seat, guard, target } = await prepare(options, relay, dir);
  // Kept partial files too old to resume (PARTIAL_MAX_AGE_MS), at start and then hourly; in the background.
  const sweeper = options.stdout ? null : startSweeping(target, SWEEP_DIRS);
  let closing: FerryError | null = null;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let announcer: Announcer | null = null;
  let source: SessionSource | undefined;
  const rejoin = fetching && options.stdout === undefined ? new Rejoin(timeoutMs, (code) => void shutdown(null, code)) : undefined;
  const sessions = new Sessions(once, {
    oneAtATime: options.from !== undefined,
    claimed: () => {
      rejoin?.arrived();
      source?.hold();
      announcer?.stop();
    },
    ownerDone: (end) => {
      if (!rejoin || !end.cut || closing) return void shutdown(null, end.exitCode);
      // The sender's retry comes back to resume: wait for it, within bounds.
      sessions.release();
      rejoin.wait(end.exitCode);
      source?.reopen();
    },
  });

  /** Sockets still in the secure handshake: closed with the receiver. */
  const handshaking = new Set<Socket>();
  const maxSessions = options.maxConnections ?? DEFAULT_MAX_SESSIONS;
  const busyExit = exitCodeOf('ERR_BUSY');
  const admission = new Admission((_kind, message) => emit({ event: 'error', code: 'ERR_BUSY', message, exitCode: busyExit }));
  const context = contexts(options, { target, emit, admission, claimOnce: (conn) => sessions.claim(conn), limiter });
  const startSession = (socket: Socket, ticket?: Ticket): void => {
    const conn = new Connection(socket, timeoutMs, RECEIVER_STATES);
    sessions.add(conn, runSession(conn, context(conn, ticket)));
  };
  const accept = acceptor({
    guard,
    timeoutMs,
    admission,
    handshaking,
    emit,
    refusing: () => closing !== null || sessions.taken,
    admitted: (secured, plain, ticket) => {
      // --insecure (a ticket still to authenticate): the session is what authenticates, at its HELLO; the cap is for proven senders.
      if (ticket) {
        startSession(secured, ticket);
      } else if (sessions.size >= maxSessions) {
        admission.log.note('sessions', `${maxSessions} sessions are running; told ${formatPeer(plain.remoteAddress, plain.remotePort)} to come back (ERR_BUSY)`);
        secured.end(encodeAbort('ERR_BUSY', 'the receiver is serving as many senders as it can; try again'));
      } else {
        startSession(secured, ticket);
      }
    },
    // A fetch's one sender gave a wrong code: that is the end of it, as it is for the sender. A cut is not.
    rejected: fetching ? (err) => void (exitCodeOf(err.code) === ExitCode.Refused && shutdown(err, exitCodeOf(err.code))) : undefined,
  });

  async function shutdown(reason: FerryError | null, code: number): Promise<number> {
    if (!closing) {
      closing = reason ?? new FerryError('ERR_SHUTDOWN', 'the receiver is shutting down');
      // The relay room owns the first seat by now: it may carry a session that deserves its ABORT.
      source?.close();
      rejoin?.stop();
      announcer?.stop();
      for (const socket of handshaking) socket.destroy();
      await sessions.end(closing);
      options.signal?.removeEventListener('abort', onAbort);
      sweeper?.stop();
      // Only once nothing uses it: a closed descriptor's number is soon another file's.
      void Promise.all([sessions.settled(), sweeper?.idle()]).then(() => target.close());
      userEmit({ event: 'summary', side: 'receive', ...totals, exitCode: code, seconds: (performance.now() - started) / 1000 });
      resolveDone(code);
    }
    return done;
  }

  const onAbort = (): void => {
    const err = abortError(options.signal);
    void shutdown(err, exitCodeOf(err.code));
  };
  const sourceFailed = (err: FerryError): void => {
    emit({ event: 'error', code: err.code, message: err.message, exitCode: exitCodeOf(err.code) });
    void shutdown(err, exitCodeOf(err.code));
  };

  try {
    source = await openSource(options, { relay, seat, accept, startSession, maxSessions, timeoutMs, emit, failed: sourceFailed });
  } catch (err) {
    seat?.leave();
    sweeper?.stop();
    void Promise.resolve(sweeper?.idle()).then(() => target.close());
    throw err;
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const where = source.where;
  // A fetch waits for nobody new: its sender printed the code, and is dialled or met in its room.
  if (!fetching) announcer = sayWhere(where, guard, options, emit, closing !== null);

  return {
    host: 'relay' in where ? relay!.host : where.host,
    port: 'relay' in where ? relay!.port : where.port,
    code: guard?.code,
    done,
    close: (reason?: FerryError) => shutdown(reason ?? null, reason ? exitCodeOf(reason.code) : 0),
  };
}

/**
 * What comes before the first connection: at a relay with no code, the room
 * (its number begins the code); the code's guard; the target folder, opened
 * once, everything below it reached from its descriptor (target.ts). A
 * failure leaves the room.
 */
async function prepare(
  options: ReceiveOptions,
  relay: RelayOptions | undefined,
  dir: string,
): Promise<{ seat: Seat | undefined; guard: CodeGuard | undefined; target: TargetDir }> {
  const seat = relay && options.code === undefined ? await Seat.allocate(relay, RECEIVER_SIDE) : undefined;
  try {
    const guard = codeGuard(options, seat?.nameplate);
    return { seat, guard, target: TargetDir.open(dir) };
  } catch (err) {
    seat?.leave();
    throw err;
  }
}

/**
 * The `listening` event: the relay, or the address with the LAN announcer
 * started there (only with a code, and only where it listens: an
 * --insecure sender cannot tell its receiver from anyone else who
 * announces). Returns the announcer, if any.
 */
function sayWhere(where: SessionSource['where'], guard: CodeGuard | undefined, options: ReceiveOptions, emit: EventListener, closing: boolean): Announcer | null {
  const secret = guard ? { code: guard.code } : { insecure: true as const };
  if ('relay' in where) {
    emit({ event: 'listening', relay: where.relay, ...secret, side: 'receive' });
    return null;
  }
  const announcer = options.announce && guard && !closing ? startAnnouncing({ port: where.port, host: where.host, udpPort: options.announcePort }) : null;
  emit({ event: 'listening', host: where.host, port: where.port, ...secret, ...(announcer ? { announcing: true as const } : {}) });
  return announcer;
}

/** The receiver's modes do not mix: a port of its own, a relay, or a sender to dial. */
function checkModes(options: ReceiveOptions): void {
  if (options.insecure && options.code !== undefined) throw new FerryError('ERR_USAGE', 'a code and --insecure do not go together');
  if (options.relay && options.from) throw new FerryError('ERR_USAGE', '--relay and --from do not go together: the sender is reached one way');
  if ((options.relay || options.from) && (options.host !== undefined || options.port !== undefined)) {
    throw new FerryError('ERR_USAGE', `--host and --port are where a receiver listens; with ${options.relay ? '--relay' : '--from'} it does not`);
  }
  // Through a relay the code's number names the room: without a code there is nothing to meet at.
  if (options.relay && options.insecure) throw new FerryError('ERR_USAGE', '--insecure does not go through a relay: the code names the room');
  if (options.from && !options.insecure && options.code === undefined) throw new FerryError('ERR_USAGE', '--from needs the code the sender printed: --code CODE (or FERRY_CODE)');
}

/** The source the options ask for, started (the port bound, the relay seated, or the sender dialled). */
async function openSource(
  options: ReceiveOptions,
  deps: {
    relay: RelayOptions | undefined;
    seat: Seat | undefined;
    accept: (socket: Socket) => void;
    startSession: (socket: Socket) => void;
    maxSessions: number;
    timeoutMs: number;
    emit: EventListener;
    failed(err: FerryError): void;
  },
): Promise<SessionSource> {
  if (deps.relay) {
    // Sender first: it waits in the room its code names, so nobody there within the timeout is a mistake.
    const first = deps.seat ?? codeNumber(options.code!);
    return new RelayRoom(deps.relay, first, deps.accept, { ...deps, ...(deps.seat ? {} : { firstWaitMs: deps.timeoutMs }) });
  }
  if (options.from) {
    const from = new FromSender({ host: options.from.host, port: options.from.port ?? DEFAULT_PORT }, options.code, deps.startSession, deps);
    from.reopen();
    return from;
  }
  const server = receiverServer(deps.accept, deps.maxSessions, BACKSTOP_SLACK);
  return listenSource(server, await bind(server, options, deps.emit));
}

/**
 * A fetch whose session was cut waits for its sender to come back and
 * resume (its --retries re-dial or re-join): at most REJOIN_MS, or twice
 * the timeout if that is longer, from the cut; then the receiver ends
 * with the cut session's exit code.
 */
class Rejoin {
  private timer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly giveUp: (code: number) => void;

  constructor(timeoutMs: number, giveUp: (code: number) => void) {
    this.windowMs = Math.max(REJOIN_MS, 2 * timeoutMs);
    this.giveUp = giveUp;
  }

  wait(code: number): void {
    this.stop();
    this.timer = setTimeout(() => this.giveUp(code), this.windowMs);
  }

  arrived(): void {
    this.stop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * What each session is given: the receiver's folder and policy, shared
 * state (names arriving, --stdout), and its own way through the folder.
 */
function contexts(
  options: ReceiveOptions,
  shared: { target: TargetDir; emit: EventListener; admission: Admission; claimOnce(conn: ReceiverConnection): void; limiter: RateLimiter | undefined },
): (conn: ReceiverConnection, ticket: Ticket | undefined) => SessionContext {
  const allowHidden = options.allowHidden ?? false;
  const inFlight = new Set<string>();
  const stdout = options.stdout ? { stream: options.stdout, taken: false } : undefined;
  const check = offerChecker({ maxSize: options.maxSize, inFlight, stdout, allowHidden });
  return (conn, ticket) => ({
    target: shared.target,
    tree: new TargetTree(shared.target, { allowHidden }),
    check,
    overwrite: options.overwrite ?? false,
    allowUpdate: options.allowUpdate ?? false,
    fsync: options.fsync ?? true,
    maxSize: options.maxSize,
    inFlight,
    stdout,
    emit: ticket ? strangerEmit(shared.admission, ticket, shared.emit) : shared.emit,
    throttle: shared.limiter ? throttleReads(conn, shared.limiter) : undefined,
    onHandshake: () => {
      // --insecure: the first HELLO is as far as this receiver can authenticate a sender.
      ticket?.authenticated();
      shared.claimOnce(conn);
    },
  });
}

/** Listens as the options say; from then on, accept() errors (out of file descriptors) are reported and serving goes on. */
async function bind(server: Server, options: ReceiveOptions, emit: EventListener): Promise<{ host: string; port: number }> {
  const address = await listen(server, options.host, options.port ?? DEFAULT_PORT);
  server.on('error', (err) => {
    const e = toFerryError(err);
    emit({ event: 'error', code: e.code, message: `cannot accept a connection: ${e.message}`, exitCode: exitCodeOf(e.code) });
  });
  return address;
}

/** The receiver's code and wrong-code limiter; none with --insecure. At a relay, a fresh code begins with the room's number. */
function codeGuard(options: ReceiveOptions, nameplate: number | undefined): CodeGuard | undefined {
  if (options.insecure) return undefined;
  const guard = new CodeGuard(options.code ?? generateCode(nameplate), options.rateLimit ?? {});
  // scrypt of the code and both SPAKE2 blinding terms, once, started now: a handshake that arrives first waits for them.
  void guard.shareCheck().catch(() => {});
  return guard;
}

/** Passes events on, counting what the summary event reports when the receiver stops. */
function counting(emitTo: EventListener): { emit: EventListener; totals: { files: number; directories: number; bytes: number; unchanged: number; failures: number } } {
  const totals = { files: 0, directories: 0, bytes: 0, unchanged: 0, failures: 0 };
  const emit: EventListener = (event) => {
    if (event.event === 'unchanged') {
      totals.unchanged++;
    } else if (event.event === 'received') {
      if (event.directory) totals.directories++;
      else totals.files++;
      totals.bytes += event.bytes;
    } else if (event.event === 'error' && event.name !== undefined) {
      totals.failures++;
    }
    emitTo(event);
  };
  return { emit, totals };
}

/**
 * --insecure sessions before their HELLO: an error from a connection
 * admission closed is not worth a line, and the others are rate-limited
 * like failed secure handshakes.
 */
function strangerEmit(admission: Admission, ticket: Ticket, emit: EventListener): EventListener {
  return (event) => {
    if (ticket.isAuthenticated || event.event !== 'error') return emit(event);
    if (ticket.dropped) return;
    const allowed = admission.log.allow(`handshake ${event.code}`);
    if (allowed) emit({ ...event, message: event.message + allowed.suffix });
  };
}

