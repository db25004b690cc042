/**
 * The receiving side: listens, and runs one session per connection, all at
 * once, so a slow or hostile sender never holds up the others.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { Connection, DEFAULT_TIMEOUT_MS, formatPeer, type ReceiverConnection } from '../connection.js';
import type { EventListener } from '../events.js';
import { exitCodeOf } from '../exit-codes.js';
import { FerryError, abortError, toFerryError } from '../protocol/errors.js';
import { CodeGuard, generateCode, secureServer } from '../secure/index.js';
import { RECEIVER_STATES } from '../protocol/states.js';
import { rateLimiter, throttleReads, type RateLimiter } from '../rate-limit.js';
import { encodeAbort } from '../protocol/messages.js';
import { ADMISSION_LIMITS, Admission, DEFAULT_MAX_SESSIONS, type Ticket } from './admission.js';
import { startSweeping } from './partials.js';
import { offerChecker, runSession, type SessionContext } from './session.js';
import { Sessions } from './sessions.js';
import { TargetDir, TargetTree } from './target.js';

export const DEFAULT_PORT = 7878;
/**
 * node closes connections beyond `server.maxConnections` before we see them,
 * silently. Admission (unauthenticated) and the session cap keep the count
 * below this; it remains as a backstop for file descriptors, e.g. for failed
 * handshakes lingering (up to 2 s) to deliver their ABORT.
 */
const BACKSTOP_SLACK = 1024;
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
  /** Authenticated sessions served at once (default 256); a sender beyond it is told ERR_BUSY and retries. Connections still in the handshake have their own budget (src/receiver/admission.ts). */
  maxConnections?: number;
  onEvent?: EventListener;
  /** Aborting closes the receiver; sessions are told and their temp files deleted. */
  signal?: AbortSignal;
}

export interface Receiver {
  /** The address actually bound ('::' for all interfaces). */
  readonly host: string;
  /** The port actually bound (useful with port 0). */
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

/** Starts a receiver; resolves once it is listening. */
export async function receive(options: ReceiveOptions = {}): Promise<Receiver> {
  const dir = options.dir ?? '.';
  if (options.insecure && options.code !== undefined) throw new FerryError('ERR_USAGE', 'a code and --insecure do not go together');
  const guard = codeGuard(options);
  // One bucket for every session: the limit is the receiver's, not each sender's.
  const limiter = rateLimiter(options.limitRate);
  const once = (options.once ?? false) || options.stdout !== undefined;
  const userEmit: EventListener = options.onEvent ?? (() => {});
  const started = performance.now();
  const { emit, totals } = counting(userEmit);
  // Opened once: everything below it is reached from this descriptor (target.ts).
  const target = TargetDir.open(dir);
  // Kept partial files too old to resume (PARTIAL_MAX_AGE_MS), at start and then hourly; in the background.
  const sweeper = options.stdout ? null : startSweeping(target, SWEEP_DIRS);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let closing: FerryError | null = null;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const sessions = new Sessions(once, { claimed: () => server.close(), ownerDone: (code) => void shutdown(null, code) });

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
  const server: Server = createServer(
    acceptor({
      guard,
      timeoutMs,
      maxSessions,
      admission,
      handshaking,
      emit,
      refusing: () => closing !== null || sessions.taken,
      sessionCount: () => sessions.size,
      startSession,
    }),
  );
  server.maxConnections = ADMISSION_LIMITS.total + maxSessions + BACKSTOP_SLACK;

  async function shutdown(reason: FerryError | null, code: number): Promise<number> {
    if (!closing) {
      closing = reason ?? new FerryError('ERR_SHUTDOWN', 'the receiver is shutting down');
      server.close();
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

  let address: { host: string; port: number };
  try {
    address = await bind(server, options, emit);
  } catch (err) {
    sweeper?.stop();
    void Promise.resolve(sweeper?.idle()).then(() => target.close());
    throw err;
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  emit({ event: 'listening', host: address.host, port: address.port, ...(guard ? { code: guard.code } : { insecure: true as const }) });

  return {
    host: address.host,
    port: address.port,
    code: guard?.code,
    done,
    close: (reason?: FerryError) => shutdown(reason ?? null, reason ? exitCodeOf(reason.code) : 0),
  };
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

/** The receiver's code and wrong-code limiter; none with --insecure. */
function codeGuard(options: ReceiveOptions): CodeGuard | undefined {
  if (options.insecure) return undefined;
  const guard = new CodeGuard(options.code ?? generateCode(), options.rateLimit ?? {});
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

/** What the accept path needs from its receiver. */
interface AcceptDeps {
  guard: CodeGuard | undefined;
  timeoutMs: number;
  maxSessions: number;
  admission: Admission;
  /** Sockets still in the secure handshake: closed with the receiver. */
  handshaking: Set<Socket>;
  emit: EventListener;
  /** Closing, or a --once receiver whose sender has arrived. */
  refusing(): boolean;
  sessionCount(): number;
  startSession(socket: Socket, ticket?: Ticket): void;
}

/**
 * The accept path: each connection gets a place in the admission budget
 * (or is closed), then the secure handshake (or, --insecure, a session that
 * authenticates the sender at its HELLO), then a session if there is room.
 */
function acceptor(deps: AcceptDeps): (socket: Socket) => void {
  const { guard, admission, handshaking, emit } = deps;
  const secured = (socket: Socket, tls: Socket): void => {
    handshaking.delete(socket);
    if (deps.refusing()) {
      tls.destroy();
    } else if (deps.sessionCount() >= deps.maxSessions) {
      admission.log.note('sessions', `${deps.maxSessions} sessions are running; told ${formatPeer(socket.remoteAddress, socket.remotePort)} to come back (ERR_BUSY)`);
      tls.end(encodeAbort('ERR_BUSY', 'the receiver is serving as many senders as it can; try again'));
    } else {
      deps.startSession(tls);
    }
  };
  const failed = (socket: Socket, ticket: Ticket, err: unknown): void => {
    handshaking.delete(socket);
    ticket.ending();
    // Admission closed it and said so, once for many.
    if (ticket.dropped) return;
    const e = toFerryError(err);
    const allowed = admission.log.allow(`handshake ${e.code}`);
    if (!allowed) return;
    const peer = formatPeer(socket.remoteAddress, socket.remotePort);
    // A stranger's wrong code is worth a line (a flood of them, a few lines); the receiver serves on.
    const message = e.code === 'ERR_BAD_CODE' ? `${peer} gave a wrong code; nothing was written` : `${peer}: ${e.message}`;
    emit({ event: 'error', code: e.code, message: message + allowed.suffix, exitCode: exitCodeOf(e.code), peer });
  };
  return (socket) => {
    if (deps.refusing()) {
      socket.destroy();
      return;
    }
    const ticket = admission.admit(socket.remoteAddress, () => socket.destroy());
    if (!ticket) {
      socket.destroy();
      return;
    }
    socket.once('close', ticket.release);
    if (!guard) {
      deps.startSession(socket, ticket);
      return;
    }
    handshaking.add(socket);
    secureServer(socket, guard, {
      timeoutMs: deps.timeoutMs,
      totalMs: admission.handshakeMs,
      onFirstFrame: ticket.framed,
      onWaiting: ticket.waiting,
    }).then(
      (tls) => {
        ticket.authenticated();
        secured(socket, tls);
      },
      (err: unknown) => failed(socket, ticket, err),
    );
  };
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


/**
 * Binds the server. With no host, listens on '::' with IPv4 mapped in (all
 * interfaces, both families), falling back to 0.0.0.0 where IPv6 is off.
 */
async function listen(server: Server, host: string | undefined, port: number): Promise<{ host: string; port: number }> {
  const attempt = (bindHost: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host: bindHost, port, ipv6Only: false }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    try {
      await attempt(host ?? '::');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
      await attempt('0.0.0.0');
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${host ?? 'all interfaces'} port ${port}`;
    const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'no such local address' : code ?? String(err);
    throw new FerryError('ERR_LISTEN', `cannot listen on ${where}: ${why}`, { cause: toFerryError(err) });
  }
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new FerryError('ERR_LISTEN', 'the server has no address');
  return { host: bound.address, port: bound.port };
}
