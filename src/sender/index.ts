/**
 * The sending side: walks the paths, connects, says HELLO, then offers each
 * file and folder. Small files and folders go eagerly (OFFER, DATA, END at
 * once; their verdicts are collected as they come, a window behind); larger
 * files wait for ACCEPT, which may ask to resume where a cut transfer
 * stopped. A broken connection is retried with backoff, resuming.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, DEFAULT_TIMEOUT_MS, type SenderConnection } from '../connection.js';
import type { EventListener, HashInfo } from '../events.js';
import { progressReporter } from '../events.js';
import { SUPPORTED_ALGORITHMS, algorithmByName, chooseAlgorithm, digestOf, hashFilePrefix, type HashAlgorithm, type Hasher } from '../hash.js';
import { FrameType, HEADER_SIZE, MAX_EAGER_BYTES, OfferFlag } from '../protocol/constants.js';
import { FerryError, abortError, exitCodeOf, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeBye, encodeEnd, encodeFrame, encodeHello, encodeOffer, encodeResume, frameDataInPlace, payloadOf } from '../protocol/messages.js';
import { printableName } from '../printable.js';
import { SENDER_STATES } from '../protocol/states.js';
import { normalizeCode, secureClient } from '../secure/index.js';
import { BufferPool, DEFAULT_CHUNK_SIZE, readChunk } from './source.js';
import { collect, type DirectoryEntry, type Entry, type FileEntry, type StdinEntry } from './walk.js';

export interface SendOptions {
  /** Files and folders to send ('-': standard input, named by `stdinName`). A folder goes with its whole tree. */
  files: string[];
  host: string;
  port: number;
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
   * authenticated by it (docs/security.md). Required unless `insecure`.
   */
  code?: string;
  /** Plain TCP, no code: only with a receiver that is --insecure too. */
  insecure?: boolean;
  /** New connections after a broken one (lost, timed out, refused as busy), resuming. Default 0 (the CLI's is 5). */
  retries?: number;
  /** Pause before the first retry; doubles each time, at most 16 s. Default 1 s. */
  retryDelayMs?: number;
  onEvent?: EventListener;
  /** Aborting stops the transfer; the peer is told, and the reason's code is reported (ERR_SIGINT by default). */
  signal?: AbortSignal;
}

export interface FileResult {
  /** The relative path offered ('/' between components). */
  name: string;
  path: string;
  bytes: number;
  /** 'OK' when the receiver verified and saved the file (or made the folder). */
  code: ErrorCode;
  message: string;
  hash?: HashInfo;
  directory?: true;
  /** Content bytes this run put in DATA frames. */
  transferred: number;
  /** Bytes the receiver already held from a cut transfer. */
  resumedFrom: number;
  seconds: number;
}

export interface SendSummary {
  /** 0 when everything was verified; otherwise the highest exit code of the failures. */
  exitCode: number;
  /** One result per file and folder, in the order they were offered. */
  files: FileResult[];
  /** What ended the session early, if anything did (what came after it was not sent). */
  error?: FerryError;
}

/** Verdicts of eager offers the sender may wait for at once: bounds what a lost connection must resend. */
const WINDOW_FILES = 256;
const WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_RETRY_DELAY_MS = 16_000;
/** A connection may fail in these ways and work the next time. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_CONNECT', 'ERR_CONNECTION_LOST', 'ERR_TIMEOUT', 'ERR_TRUNCATED', 'ERR_BUSY']);

/**
 * Sends files and folders to a receiver. Rejects only on bad options or
 * paths that cannot be sent (ERR_USAGE, ERR_NOT_FOUND, ERR_UNREADABLE:
 * nothing was sent); every transfer outcome, good or bad, resolves in the
 * summary.
 */
export async function send(options: SendOptions): Promise<SendSummary> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const emit: EventListener = options.onEvent ?? (() => {});
  const forced = options.hash === undefined ? undefined : algorithmByName(options.hash);
  if (options.hash !== undefined && !forced) {
    throw new FerryError('ERR_USAGE', `unknown hash algorithm ${options.hash} (known: ${SUPPORTED_ALGORITHMS.map((a) => a.name).join(', ')})`);
  }
  if (options.files.length === 0) throw new FerryError('ERR_USAGE', 'no file to send');
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new FerryError('ERR_USAGE', `retries must be a whole number, not ${retries}`);
  if (options.code !== undefined && options.insecure) throw new FerryError('ERR_USAGE', 'a code and --insecure do not go together');
  if (options.code === undefined && !options.insecure) {
    throw new FerryError('ERR_USAGE', "a code is needed: --code CODE (or FERRY_CODE) as the receiver printed it; or --insecure on both sides");
  }
  if (options.code !== undefined) normalizeCode(options.code);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1 && chunkSize <= 8 * 1024 * 1024)) throw new FerryError('ERR_USAGE', `chunk size ${chunkSize} out of range`);
  const entries = await collect(options.files, { ...(options.stdinName === undefined ? {} : { stdinName: options.stdinName }), emit });
  emit({
    event: 'plan',
    files: entries.filter((e) => e.kind !== 'directory').length,
    directories: entries.filter((e) => e.kind === 'directory').length,
    bytes: entries.reduce((sum, e) => sum + (e.kind === 'file' ? e.size : 0), 0),
  });

  const results = new Map<Entry, FileResult>();
  const ctx: AttemptContext = {
    host: options.host,
    port: options.port,
    timeoutMs,
    forced,
    emit,
    results,
    chunkSize,
    pool: undefined,
    stdin: options.stdin ?? process.stdin,
    ...(options.code === undefined ? {} : { code: options.code }),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  let error: FerryError | undefined;
  for (let attempt = 0; ; attempt++) {
    const todo = entries.filter((e) => !results.has(e));
    error = await runAttempt(todo, ctx);
    if (!error) break;
    // Standard input cannot be read twice.
    const again = RETRYABLE.has(error.code) && attempt < retries && !todo.some((e) => e.kind === 'stdin') && !options.signal?.aborted;
    if (!again) break;
    const delayMs = Math.min((options.retryDelayMs ?? 1000) * 2 ** attempt, MAX_RETRY_DELAY_MS);
    emit({ event: 'retry', attempt: attempt + 1, of: retries, delaySeconds: delayMs / 1000, code: error.code, message: error.message });
    try {
      await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {});
    } catch {
      error = abortError(options.signal);
      break;
    }
  }
  if (error) {
    for (const entry of entries) if (!results.has(entry)) results.set(entry, failed(entry, error, 0));
    emit({ event: 'error', code: error.code, message: error.message, exitCode: error.exitCode, ...(ctx.current ? { name: ctx.current.name } : {}) });
  }
  const files = entries.map((e) => results.get(e)!);
  const exitCode = Math.max(0, ...files.map((r) => exitCodeOf(r.code)));
  const ok = files.filter((r) => r.code === 'OK');
  emit({
    event: 'summary',
    side: 'send',
    files: ok.filter((r) => !r.directory).length,
    directories: ok.filter((r) => r.directory).length,
    bytes: ok.reduce((sum, r) => sum + r.bytes, 0),
    failures: files.length - ok.length,
    exitCode,
    seconds: (performance.now() - started) / 1000,
  });
  return error ? { exitCode, files, error } : { exitCode, files };
}

interface AttemptContext {
  host: string;
  port: number;
  timeoutMs: number;
  forced: HashAlgorithm | undefined;
  emit: EventListener;
  /** Final results so far, across attempts; an entry without one is sent (again). */
  results: Map<Entry, FileResult>;
  chunkSize: number;
  /** Made on the first large file: a tree of small files never needs it. */
  pool: BufferPool | undefined;
  stdin: Readable;
  /** Absent: --insecure. */
  code?: string;
  signal?: AbortSignal;
  /** The file on the wire when the last attempt failed: the session's error is reported against it. */
  current?: Entry;
}

/** An eager offer on the wire, waiting for its verdict. */
interface InFlight {
  entry: FileEntry | DirectoryEntry;
  digest: Buffer;
  bytes: number;
  started: number;
  algorithm: HashAlgorithm;
}

/**
 * One connection: sends what `todo` holds, recording each final result in
 * ctx.results (ERR_BUSY refusals are left out, to be tried again). Returns
 * what ended the connection early, if anything.
 */
async function runAttempt(todo: Entry[], ctx: AttemptContext): Promise<FerryError | undefined> {
  const { emit, results } = ctx;
  let conn: SenderConnection;
  try {
    const socket = await dial(ctx.host, ctx.port, ctx.timeoutMs, ctx.signal);
    const secured = ctx.code === undefined ? socket : await secureClient(socket, ctx.code, { timeoutMs: ctx.timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    conn = new Connection(secured, ctx.timeoutMs, SENDER_STATES);
  } catch (err) {
    return toFerryError(err);
  }
  const onAbort = (): void => conn.abort(abortError(ctx.signal));
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal?.aborted) onAbort();

  const record = (entry: Entry, result: FileResult): void => {
    if (result.code === 'ERR_BUSY') return;
    results.set(entry, result);
    if (result.code === 'OK') {
      emit({
        event: 'sent',
        name: result.name,
        bytes: result.bytes,
        ...(result.hash ? { hash: result.hash } : {}),
        ...(result.directory ? { directory: true as const } : {}),
        transferred: result.transferred,
        resumedFrom: result.resumedFrom,
        seconds: result.seconds,
      });
    } else {
      emit({ event: 'error', code: result.code, message: result.message, exitCode: exitCodeOf(result.code), name: result.name });
    }
  };

  const inFlight: InFlight[] = [];
  let inFlightBytes = 0;
  delete ctx.current;
  let busy = false;
  const settle = async (): Promise<void> => {
    const verdict = await conn.expect('AWAIT_VERDICT');
    const sent = inFlight.shift()!;
    inFlightBytes -= sent.bytes;
    const result = judge(sent.entry, sent.algorithm, sent.digest, verdict, sent.started, sent.bytes, 0);
    if (result.code === 'ERR_BUSY') busy = true;
    record(sent.entry, result);
  };

  try {
    await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)));
    const hello = await conn.expect('HANDSHAKE');
    const algorithm = chooseAlgorithm(hello.algorithms, ctx.forced);
    if (!algorithm) {
      throw new FerryError('ERR_UNSUPPORTED_HASH', `the receiver does not support ${ctx.forced?.name ?? 'any hash this sender knows'}`);
    }
    for (const entry of todo) {
      if (entry.kind === 'directory' || (entry.kind === 'file' && entry.size <= MAX_EAGER_BYTES)) {
        const started = performance.now();
        let content: Buffer = Buffer.alloc(0);
        if (entry.kind === 'file') {
          const read = readSmall(entry);
          if (read instanceof FerryError) {
            record(entry, failed(entry, read, started));
            continue;
          }
          content = read;
        }
        const digest = entry.kind === 'file' ? digestOf(algorithm, content) : Buffer.alloc(0);
        conn.batch();
        await conn.write(eagerFrames(entry, content, algorithm, digest));
        inFlight.push({ entry, digest, bytes: content.length, started, algorithm });
        inFlightBytes += content.length;
        while (inFlight.length >= WINDOW_FILES || inFlightBytes >= WINDOW_BYTES) await settle();
        continue;
      }
      // ACCEPT or REFUSE comes after the verdicts already due.
      while (inFlight.length > 0) await settle();
      ctx.current = entry;
      const result = entry.kind === 'stdin' ? await sendStream(conn, entry, algorithm, ctx) : await sendLarge(conn, entry, algorithm, ctx);
      delete ctx.current;
      if (result.code === 'ERR_BUSY') busy = true;
      record(entry, result);
    }
    while (inFlight.length > 0) await settle();
    await conn.write(encodeBye());
    await conn.end();
    return busy ? new FerryError('ERR_BUSY', 'some files were arriving over another connection') : undefined;
  } catch (err) {
    if (!ctx.current && inFlight[0]) ctx.current = inFlight[0].entry;
    const error = toFerryError(conn.error?.code === 'ERR_SIGINT' || conn.error?.code === 'ERR_SIGTERM' ? conn.error : err);
    // Tell the receiver why, unless it told us. The ABORT is queued behind
    // DATA already written: wait until it is out (abort() destroys the socket
    // after a grace period at the latest), or a CLI exiting next would drop it.
    if (!error.remote) {
      conn.abort(error);
      await conn.closed;
    } else {
      conn.destroy();
    }
    return error;
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

/** OFFER, DATA and END of an eager file (or the OFFER of a folder), as one write. */
function eagerFrames(entry: FileEntry | DirectoryEntry, content: Buffer, algorithm: HashAlgorithm, digest: Buffer): Buffer {
  const base = { name: entry.name, mtimeMs: entry.mtimeMs, mode: entry.mode, algorithm: algorithm.id };
  if (entry.kind === 'directory') return encodeOffer({ ...base, size: 0, flags: OfferFlag.Directory });
  const offer = encodeOffer({ ...base, size: content.length, flags: OfferFlag.Eager });
  const end = encodeEnd(digest, digestOf(algorithm, payloadOf(offer)));
  return content.length === 0 ? Buffer.concat([offer, end]) : Buffer.concat([offer, encodeFrame(FrameType.Data, content), end]);
}

/**
 * A whole small file (at most MAX_EAGER_BYTES), read with blocking calls on
 * purpose: open, read and close of a cached 4 KiB file take about 10 us
 * this way, against about 250 us of promise and FileHandle machinery per
 * file measured with fs/promises (10,000 files: 2.9 s of sender CPU, most
 * of it in openFileHandle). ERR_SOURCE_CHANGED if the file is no longer the
 * size it had when walked.
 */
function readSmall(entry: FileEntry): Buffer | FerryError {
  let fd: number | undefined;
  try {
    fd = openSync(entry.path, 'r');
    const buffer = Buffer.allocUnsafe(entry.size + 1);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buffer, got, buffer.length - got, got);
      if (n === 0) break;
      got += n;
      if (got === buffer.length) break;
    }
    if (got !== entry.size) return new FerryError('ERR_SOURCE_CHANGED', `${entry.path}: file changed size while being sent`);
    return buffer.subarray(0, got);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return new FerryError('ERR_UNREADABLE', `${entry.path}: cannot read (${code ?? 'error'})`, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The result of one offer from its VERDICT. */
function judge(
  entry: Entry,
  algorithm: HashAlgorithm,
  digest: Buffer,
  verdict: { code: ErrorCode; digest: Buffer; message: string },
  started: number,
  transferred: number,
  resumedFrom: number,
): FileResult {
  const seconds = (performance.now() - started) / 1000;
  const directory = entry.kind === 'directory';
  const base = {
    name: entry.name,
    path: entry.path,
    bytes: entry.kind === 'file' ? entry.size : transferred + resumedFrom,
    transferred,
    resumedFrom,
    seconds,
    ...(directory ? { directory: true as const } : { hash: { algorithm: algorithm.name, digest: digest.toString('hex') } }),
  };
  if (verdict.code === 'OK' && !directory && !verdict.digest.equals(digest)) {
    // Only a damaged VERDICT can say OK with another digest: do not believe it.
    return { ...base, code: 'ERR_HASH_MISMATCH', message: `${printableName(entry.name)}: the receiver's verdict does not carry this file's digest` };
  }
  if (verdict.code === 'OK') return { ...base, code: 'OK', message: 'verified' };
  const theirs = !directory && verdict.digest.length > 0 && verdict.code === 'ERR_HASH_MISMATCH' ? ` (receiver computed ${verdict.digest.toString('hex')})` : '';
  // An eager offer's refusal comes as a verdict: word it as a refusal all the same.
  const refused = exitCodeOf(verdict.code) === 4 ? 'refused by the receiver: ' : '';
  return { ...base, code: verdict.code, message: `${printableName(entry.name)}: ${refused}${verdict.message || verdict.code}${theirs}` };
}

/** Offers a file over the eager size and, if accepted, streams it (from where the receiver's partial copy ends, if that matches) and waits for the verdict. */
async function sendLarge(conn: SenderConnection, entry: FileEntry, algorithm: HashAlgorithm, ctx: AttemptContext): Promise<FileResult> {
  const started = performance.now();
  const offer = encodeOffer({ ...entry, algorithm: algorithm.id, flags: 0 });
  await conn.write(offer);
  const reply = await conn.expect('OFFERED');
  if (reply.type === FrameType.Refuse) {
    return failed(entry, new FerryError(reply.code, `${printableName(entry.name)}: refused by the receiver: ${reply.message}`, { remote: true }), started);
  }
  ctx.pool ??= new BufferPool(ctx.chunkSize);
  const pool = ctx.pool;
  let handle: FileHandle;
  try {
    handle = await open(entry.path, 'r');
  } catch (err) {
    // Accepted but unreadable now: the receiver must hear of it; the session cannot go on mid-file.
    throw new FerryError('ERR_UNREADABLE', `${entry.path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  try {
    const before = await handle.stat();
    let hasher = algorithm.create();
    let from = 0;
    if (reply.offset > 0) {
      // The receiver holds a prefix: keep it only if it is ours.
      if (reply.offset <= entry.size && reply.prefixDigest.length === algorithm.digestLength) {
        await conn.local(() => hashRange(handle, hasher, reply.offset, pool));
        if (hasher.digest().equals(reply.prefixDigest)) from = reply.offset;
      }
      if (from === 0) hasher = algorithm.create();
      await conn.write(encodeResume(from));
    }
    ctx.emit({ event: 'start', side: 'send', name: entry.name, bytes: entry.size, peer: conn.peer, ...(from > 0 ? { resumedFrom: from } : {}) });
    const progress = progressReporter(ctx.emit, { side: 'send', name: entry.name, bytes: entry.size, peer: conn.peer });
    await streamFile(conn, handle, entry, hasher, from, pool, progress);
    const after = await handle.stat();
    // ctime too: a rewrite that puts the mtime back (cp -p, rsync -t, tar) cannot reset it.
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.ctimeMs !== before.ctimeMs || before.size !== entry.size) {
      throw new FerryError('ERR_SOURCE_CHANGED', `${entry.path}: file changed while being sent`);
    }
    const digest = hasher.digest();
    await conn.write(encodeEnd(digest, digestOf(algorithm, payloadOf(offer))));
    const verdict = await conn.expect('AWAIT_VERDICT');
    return judge(entry, algorithm, digest, verdict, started, entry.size - from, from);
  } finally {
    await handle.close();
  }
}

/** Feeds the file's first `length` bytes to `hasher`. */
async function hashRange(handle: FileHandle, hasher: Hasher, length: number, pool: BufferPool): Promise<void> {
  const buffer = await pool.acquire();
  try {
    const payload = buffer.subarray(HEADER_SIZE, HEADER_SIZE + pool.chunkSize);
    if ((await hashFilePrefix(handle, hasher, length, payload)) < length) throw new FerryError('ERR_SOURCE_CHANGED', 'file shrank while being read');
  } finally {
    pool.release(buffer);
  }
}

/** Streams the file's bytes from `from` as DATA frames, hashing them. */
async function streamFile(
  conn: SenderConnection,
  handle: FileHandle,
  entry: FileEntry,
  hasher: Hasher,
  from: number,
  pool: BufferPool,
  progress: (done: number) => void,
): Promise<void> {
  let sent = from;
  let written = from;
  progress(written);
  while (sent < entry.size) {
    // A failed connection may never call back for buffers it held.
    const buffer = await Promise.race([pool.acquire(), conn.failed]);
    if (conn.error) {
      pool.release(buffer);
      throw conn.error;
    }
    const want = Math.min(pool.chunkSize, entry.size - sent);
    const got = await readChunk(handle, buffer, want, sent);
    if (got < want) {
      pool.release(buffer);
      throw new FerryError('ERR_SOURCE_CHANGED', `${entry.path}: file shrank while being sent`);
    }
    hasher.update(buffer.subarray(HEADER_SIZE, HEADER_SIZE + got));
    sent += got;
    conn.writeThen(frameDataInPlace(buffer, got), () => {
      written += got;
      progress(written);
      pool.release(buffer);
    });
  }
  await conn.drained();
}

/** Standard input: size unknown, so a stream offer; END settles the size and the digest. */
async function sendStream(conn: SenderConnection, entry: StdinEntry, algorithm: HashAlgorithm, ctx: AttemptContext): Promise<FileResult> {
  const started = performance.now();
  const offer = encodeOffer({ name: entry.name, size: 0, mtimeMs: Date.now(), mode: 0o644, algorithm: algorithm.id, flags: OfferFlag.Stream });
  await conn.write(offer);
  const reply = await conn.expect('OFFERED');
  if (reply.type === FrameType.Refuse) {
    return failed(entry, new FerryError(reply.code, `${printableName(entry.name)}: refused by the receiver: ${reply.message}`, { remote: true }), started);
  }
  if (reply.offset !== 0) throw new FerryError('ERR_MALFORMED_PAYLOAD', 'ACCEPT of a stream at an offset');
  ctx.emit({ event: 'start', side: 'send', name: entry.name, bytes: 0, peer: conn.peer });
  const hasher = algorithm.create();
  let sent = 0;
  const progress = progressReporter(ctx.emit, { side: 'send', name: entry.name, bytes: 0, peer: conn.peer });
  const chunks = ctx.stdin[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([chunks.next(), conn.failed]);
    if (next.done) break;
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as string);
    for (let at = 0; at < chunk.length; at += ctx.chunkSize) {
      const piece = chunk.subarray(at, at + ctx.chunkSize);
      hasher.update(piece);
      sent += piece.length;
      await conn.write(encodeFrame(FrameType.Data, piece));
      progress(sent);
    }
  }
  const digest = hasher.digest();
  await conn.write(encodeEnd(digest, digestOf(algorithm, payloadOf(offer))));
  const verdict = await conn.expect('AWAIT_VERDICT');
  return judge(entry, algorithm, digest, verdict, started, sent, 0);
}

function failed(entry: Entry, error: FerryError, started: number): FileResult {
  return {
    name: entry.name,
    path: entry.path,
    bytes: entry.kind === 'file' ? entry.size : 0,
    code: error.code,
    message: error.message,
    ...(entry.kind === 'directory' ? { directory: true as const } : {}),
    transferred: 0,
    resumedFrom: 0,
    seconds: started ? (performance.now() - started) / 1000 : 0,
  };
}

/** Connects, bounded by the timeout; errors become one clear ERR_CONNECT. */
function dial(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FerryError('ERR_TIMEOUT', `cannot connect to ${where}: no answer in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const onAbort = (): void => {
      socket.destroy();
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const why = err.code === 'ECONNREFUSED' ? 'connection refused (is `ferry receive` running there?)' : err.code ?? err.message;
      reject(new FerryError('ERR_CONNECT', `cannot connect to ${where}: ${why}`, { cause: err }));
    });
  });
}
