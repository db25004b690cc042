/**
 * The sending side: checks the options, walks the paths, then sends over
 * one connection after another until everything has a result or a failure
 * is final, and sums up. Where each part lives:
 *
 *   attempt.ts  one connection: dial, secure, HELLO, each entry, BYE
 *   retry.ts    the retry loop and its backoff; what is worth retrying
 *   probe.ts    re-sending: probes first, files the receiver holds the same are not sent
 *   eager.ts    small files and folders, and the window of their verdicts
 *   large.ts    a file over the eager size, with resume
 *   stream.ts   standard input
 *   offer.ts    a non-eager offer's round trips (OFFER/ACCEPT, END/VERDICT)
 *   results.ts  FileResult, judging a VERDICT, and the results of a send
 *   wait.ts     before the first connection: fail at once, or --wait for the receiver
 *   link.ts     each attempt's socket: dialled (--to), paired at a relay, or accepted (--listen)
 *   dial.ts     the TCP connect
 *   (no host: src/discovery/find.ts finds the receiver on the LAN first)
 *   walk.ts     the paths given, as the list of what is offered
 *   source.ts   reading local files
 */
import type { Readable } from 'node:stream';
import { DEFAULT_TIMEOUT_MS } from '../connection.js';
import type { EventListener } from '../events.js';
import { SUPPORTED_ALGORITHMS, algorithmByName, type HashAlgorithm } from '../hash.js';
import { exitCodeOf } from '../exit-codes.js';
import { FerryError } from '../protocol/errors.js';
import { DEFAULT_FIND_MS } from '../discovery/find.js';
import { DEFAULT_PORT } from '../receiver/index.js';
import { rateLimiter, type RateLimiter } from '../rate-limit.js';
import { normalizeCode, prepareClient } from '../secure/index.js';
import type { AttemptFailure, SendContext } from './attempt.js';
import { directLink, lanLink, listenLink, relayLink, type Link, type LinkContext } from './link.js';
import { RELAY_DEFAULT_PORT } from '../relay/wire.js';
import { Results, type FileResult } from './results.js';
import { sendWithRetries } from './retry.js';
import { DEFAULT_CHUNK_SIZE } from './source.js';
import { collect, type Entry } from './walk.js';

export type { FileResult } from './results.js';

export interface SendOptions {
  /** Files and folders to send ('-': standard input, named by `stdinName`). A folder goes with its whole tree. */
  files: string[];
  /**
   * The receiver to dial (`--to`). At most one of `host`, `relay` and
   * `listen`; with none (and a code), the receiver is found on the LAN by
   * its announcements (src/discovery/find.ts), among those that prove they
   * hold the code.
   */
  host?: string;
  /** Its port. Default 7878. */
  port?: number;
  /** On the LAN: how long to listen for receivers' announcements. Default 3 s (DEFAULT_FIND_MS). */
  findMs?: number;
  /** On the LAN: the UDP port announcements arrive on. Default 7878 (ANNOUNCE_PORT). */
  announcePort?: number;
  /**
   * Through a relay (docs/protocol.md, section 1.2). With `code`, the
   * receiver waits there already (receive --relay) and is met in the room
   * the code's number names; without, the sender goes first: it asks for a
   * room, reports the code in a `listening` event and waits for the receiver.
   */
  relay?: { host: string; port?: number };
  /**
   * Listen, and send to the receiver that dials in (`receive --from`) with
   * the code (given, or made fresh and reported in a `listening` event).
   * Strangers that connect meet the receiver's defences (docs/security.md).
   */
  listen?: { host?: string; port?: number };
  /** Give up when the receiver is silent this long (connect included). Default 30 s. */
  timeoutMs?: number;
  /** Bytes per DATA frame. Default 1 MiB. */
  chunkSize?: number;
  /** Force a hash algorithm ('blake3' or 'sha256'); by default the best both sides know. */
  hash?: string;
  /** The name standard input is offered under; required when `files` has '-'. */
  stdinName?: string;
  /** Where '-' reads from. Default process.stdin. */
  stdin?: Readable;
  /**
   * The receiver's one-time code: the session is encrypted and both sides
   * authenticated by it (docs/security.md). Required unless `insecure`, or
   * the sender goes first (`listen`, or `relay` without one: a fresh one is made).
   */
  code?: string;
  /** Plain TCP, no code: only with a receiver that is --insecure too. */
  insecure?: boolean;
  /** New connections after a broken one (lost, timed out, refused as busy), resuming. Default 0 (the CLI's is 5). */
  retries?: number;
  /** Pause before the first retry; doubles each time, at most 16 s. Default 1 s. */
  retryDelayMs?: number;
  /**
   * Until a first connection is established, keep trying to reach the
   * receiver this long, every 250 ms (a receiver started after the sender).
   * Default 0: a receiver that cannot be reached fails the send at once
   * (ERR_CONNECT), without the retries, which are for connections lost.
   */
  waitMs?: number;
  /** Bandwidth limit: DATA bytes per second, at least 16 KiB (MIN_RATE). Default none. */
  limitRate?: number;
  /**
   * Probe files first, and send none the receiver already holds with the
   * same content (reported `unchanged`, exit 0). Default: when a folder is
   * among `files`, and on every retry (after a lost verdict the file is
   * found there); `true`: always; `false`: never.
   */
  skipSame?: boolean;
  /**
   * Ask the receiver to replace a file of the same name whose content
   * differs (REPLACE); it does so only with --allow-update (or --overwrite).
   * Default false: such a file is refused ERR_EXISTS.
   */
  update?: boolean;
  /**
   * Compress what compresses (ZDATA, brotli per chunk; src/compress.ts), for
   * slow links; only where the receiver's HELLO says it can decompress.
   * Default false: on a fast link compressing costs more than it saves.
   */
  compress?: boolean;
  /** Told once when `compress` is asked for and the receiver cannot decompress. */
  onNotice?: (message: string) => void;
  onEvent?: EventListener;
  /** Aborting stops the transfer; the peer is told, and the reason's code is reported (ERR_SIGINT by default). */
  signal?: AbortSignal;
}

export interface SendSummary {
  /** 0 when everything was verified; otherwise the highest exit code of the failures. */
  exitCode: number;
  /** One result per file and folder, in the order they were offered. */
  files: FileResult[];
  /** What ended the session early, if anything did (what came after it was not sent). */
  error?: FerryError;
}

/**
 * Sends files and folders to a receiver. Rejects only on bad options or
 * paths that cannot be sent (ERR_USAGE, ERR_NOT_FOUND, ERR_UNREADABLE:
 * nothing was sent); every transfer outcome, good or bad, resolves in the
 * summary.
 */
export async function send(options: SendOptions): Promise<SendSummary> {
  const started = performance.now();
  const emit: EventListener = options.onEvent ?? (() => {});
  const { forced, retries, chunkSize, waitMs, limiter } = checkOptions(options);
  // The password hash (~50 ms) runs while the paths are walked and the receiver dialled.
  if (options.code !== undefined) prepareClient(options.code);
  const entries = await collect(options.files, { stdinName: options.stdinName, emit });
  emitPlan(entries, emit);

  const results = new Results(emit);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const link = linkFor(options, { timeoutMs, code: options.code, insecure: options.insecure ?? false, signal: options.signal, emit }, waitMs);
  const ctx: SendContext = {
    link,
    timeoutMs,
    forced,
    emit,
    results,
    chunkSize,
    pool: undefined,
    limiter,
    stdin: options.stdin ?? process.stdin,
    signal: options.signal,
    // Sending a folder again is the common case; a lost verdict is the other: a retry finds the file there.
    probe: { first: options.skipSame ?? entries.some((e) => e.kind === 'directory'), retries: options.skipSame !== false },
    update: options.update ?? false,
    compress: { wanted: options.compress ?? false, notice: options.onNotice, told: false },
  };
  let failure: AttemptFailure | undefined;
  try {
    failure = await sendWithRetries(entries, ctx, { retries, firstDelayMs: options.retryDelayMs ?? 1000, waitMs });
  } finally {
    link.close();
  }
  const error = failure?.error;
  if (error) {
    results.failRest(entries, error);
    emit({ event: 'error', code: error.code, message: error.message, exitCode: exitCodeOf(error.code), name: failure?.during?.name });
  }
  const files = results.of(entries);
  const exitCode = Math.max(0, ...files.map((r) => exitCodeOf(r.code)));
  const ok = files.filter((r) => r.code === 'OK');
  const sent = ok.filter((r) => !r.unchanged);
  emit({
    event: 'summary',
    side: 'send',
    files: sent.filter((r) => !r.directory).length,
    directories: sent.filter((r) => r.directory).length,
    bytes: sent.reduce((sum, r) => sum + r.bytes, 0),
    unchanged: ok.length - sent.length,
    failures: files.length - ok.length,
    exitCode,
    seconds: (performance.now() - started) / 1000,
  });
  return error ? { exitCode, files, error } : { exitCode, files };
}

interface Checked {
  forced: HashAlgorithm | undefined;
  retries: number;
  chunkSize: number;
  waitMs: number;
  limiter: RateLimiter | undefined;
}

/** ERR_USAGE for options that cannot work, before anything is walked or sent. */
function checkOptions(options: SendOptions): Checked {
  const forced = options.hash === undefined ? undefined : algorithmByName(options.hash);
  if (options.hash !== undefined && !forced) {
    throw new FerryError('ERR_USAGE', `unknown hash algorithm ${options.hash} (known: ${SUPPORTED_ALGORITHMS.map((a) => a.name).join(', ')})`);
  }
  if (options.files.length === 0) throw new FerryError('ERR_USAGE', 'no file to send');
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new FerryError('ERR_USAGE', `retries must be a whole number, not ${retries}`);
  if (options.code !== undefined && options.insecure) throw new FerryError('ERR_USAGE', 'a code and --insecure do not go together');
  const ways = [options.host !== undefined, options.relay !== undefined, options.listen !== undefined].filter(Boolean).length;
  if (ways > 1) throw new FerryError('ERR_USAGE', 'say how to reach the receiver once: --to HOST, --relay HOST, or --listen');
  if (options.relay && options.insecure) throw new FerryError('ERR_USAGE', '--insecure does not go through a relay: the code names the room');
  // Going first, the sender makes the code; otherwise it must have the receiver's.
  const first = options.listen !== undefined || options.relay !== undefined;
  if (options.code === undefined && !options.insecure && !first) {
    throw new FerryError('ERR_USAGE', "a code is needed: --code CODE (or FERRY_CODE) as the receiver printed it; or --insecure on both sides");
  }
  if (options.code !== undefined) normalizeCode(options.code);
  if (ways === 0 && options.code === undefined) throw new FerryError('ERR_USAGE', 'a receiver is found on the LAN by its code: --insecure needs --to HOST');
  if (options.host === undefined && options.port !== undefined) throw new FerryError('ERR_USAGE', 'a port without a host');
  if (options.findMs !== undefined && !(Number.isFinite(options.findMs) && options.findMs > 0)) throw new FerryError('ERR_USAGE', `find time must be a positive number of milliseconds, not ${options.findMs}`);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1 && chunkSize <= 8 * 1024 * 1024)) throw new FerryError('ERR_USAGE', `chunk size ${chunkSize} out of range`);
  const waitMs = options.waitMs ?? 0;
  if (!(Number.isFinite(waitMs) && waitMs >= 0)) throw new FerryError('ERR_USAGE', `wait must be a number of milliseconds, not ${waitMs}`);
  const limiter = rateLimiter(options.limitRate);
  // A frame over the burst would go as one write after a long wait: at 16 KiB/s a 1 MiB frame is 64 s of silence for the receiver.
  return { forced, retries, chunkSize: limiter ? Math.min(chunkSize, limiter.burst) : chunkSize, waitMs, limiter };
}

/** The link the options ask for (link.ts). */
function linkFor(options: SendOptions, ctx: LinkContext, waitMs: number): Link {
  if (options.relay) return relayLink({ host: options.relay.host, port: options.relay.port ?? RELAY_DEFAULT_PORT }, ctx);
  if (options.listen) return listenLink({ host: options.listen.host, port: options.listen.port ?? DEFAULT_PORT }, ctx);
  if (options.host !== undefined) return directLink({ host: options.host, port: options.port ?? DEFAULT_PORT }, ctx);
  // --wait lengthens the search.
  return lanLink({ findMs: Math.max(options.findMs ?? DEFAULT_FIND_MS, waitMs), udpPort: options.announcePort }, ctx);
}

function emitPlan(entries: readonly Entry[], emit: EventListener): void {
  emit({
    event: 'plan',
    files: entries.filter((e) => e.kind !== 'directory').length,
    directories: entries.filter((e) => e.kind === 'directory').length,
    bytes: entries.reduce((sum, e) => sum + (e.kind === 'file' ? e.size : 0), 0),
  });
}
