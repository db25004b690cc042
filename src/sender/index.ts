/**
 * The sending side: connects, says HELLO, then for each file offers it,
 * streams it on ACCEPT, sends the digest and waits for the receiver's verdict.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { open } from 'node:fs/promises';
import { Connection, DEFAULT_TIMEOUT_MS } from '../connection.js';
import type { EventListener, HashInfo } from '../events.js';
import { progressReporter } from '../events.js';
import { SUPPORTED_ALGORITHMS, algorithmByName, chooseAlgorithm, digestOf, type HashAlgorithm } from '../hash.js';
import { FrameType, HEADER_SIZE } from '../protocol/constants.js';
import { FerryError, abortError, exitCodeOf, toFerryError, type ErrorCode } from '../protocol/errors.js';
import { encodeBye, encodeEnd, encodeHello, encodeOffer, frameDataInPlace, payloadOf } from '../protocol/messages.js';
import { printableName } from '../protocol/names.js';
import { BufferPool, DEFAULT_CHUNK_SIZE, inspectSource, readChunk, type SourceFile } from './source.js';

export interface SendOptions {
  /** Paths of regular files. Each is offered under its base name. */
  files: string[];
  host: string;
  port: number;
  /** Give up when the receiver is silent this long (connect included). Default 30 s. */
  timeoutMs?: number;
  /** Bytes per DATA frame. Default 1 MiB. */
  chunkSize?: number;
  /** Force a hash algorithm ('blake3' or 'sha256'); by default the best both sides know. */
  hash?: string;
  onEvent?: EventListener;
  /** Aborting stops the transfer; the peer is told, and the reason's code is reported (ERR_SIGINT by default). */
  signal?: AbortSignal;
}

export interface FileResult {
  name: string;
  path: string;
  bytes: number;
  /** 'OK' when the receiver verified and saved the file. */
  code: ErrorCode;
  message: string;
  hash?: HashInfo;
  seconds: number;
}

export interface SendSummary {
  /** 0 when every file was verified; otherwise the highest exit code of the failures. */
  exitCode: number;
  files: FileResult[];
  /** What ended the session early, if anything did (files after it were not sent). */
  error?: FerryError;
}

/**
 * Sends files to a receiver. Rejects only on bad options or unreadable files
 * (ERR_USAGE, ERR_NOT_FOUND, ERR_UNREADABLE: nothing was sent); every transfer
 * outcome, good or bad, resolves in the summary.
 */
export async function send(options: SendOptions): Promise<SendSummary> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const emit: EventListener = options.onEvent ?? (() => {});
  const forced = options.hash === undefined ? undefined : algorithmByName(options.hash);
  if (options.hash !== undefined && !forced) {
    throw new FerryError('ERR_USAGE', `unknown hash algorithm ${options.hash} (known: ${SUPPORTED_ALGORITHMS.map((a) => a.name).join(', ')})`);
  }
  if (options.files.length === 0) throw new FerryError('ERR_USAGE', 'no file to send');
  const pool = new BufferPool(options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const sources: SourceFile[] = [];
  for (const path of options.files) sources.push(await inspectSource(path));

  const results: FileResult[] = [];
  /** The file on the wire, if any: a session failure is reported against it. */
  let current: SourceFile | undefined;
  const finish = (error?: FerryError): SendSummary => {
    if (error) {
      for (const source of sources.slice(results.length)) {
        results.push(failed(source, error, 0));
      }
      emit({ event: 'error', code: error.code, message: error.message, exitCode: error.exitCode, ...(current ? { name: current.name } : {}) });
    }
    const exitCode = Math.max(0, ...results.map((r) => exitCodeOf(r.code)));
    return error ? { exitCode, files: results, error } : { exitCode, files: results };
  };

  let conn: Connection;
  try {
    conn = new Connection(await dial(options.host, options.port, timeoutMs, options.signal), timeoutMs, { acceptsHeartbeats: true });
  } catch (err) {
    return finish(toFerryError(err));
  }
  const onAbort = (): void => conn.abort(abortError(options.signal));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  try {
    await conn.write(encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)));
    const hello = await conn.expect([FrameType.Hello], 'HANDSHAKE');
    const algorithm = chooseAlgorithm(hello.algorithms, forced);
    if (!algorithm) {
      throw new FerryError('ERR_UNSUPPORTED_HASH', `the receiver does not support ${forced?.name ?? 'any hash this sender knows'}`);
    }
    for (const source of sources) {
      current = source;
      const result = await sendOne(conn, source, algorithm, pool, emit);
      current = undefined;
      results.push(result);
      if (result.code !== 'OK') {
        emit({ event: 'error', code: result.code, message: result.message, exitCode: exitCodeOf(result.code), name: result.name });
      }
    }
    await conn.write(encodeBye());
    await conn.end();
    return finish();
  } catch (err) {
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
    return finish(error);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Offers one file and, if accepted, streams it and waits for the verdict. */
async function sendOne(
  conn: Connection,
  source: SourceFile,
  algorithm: HashAlgorithm,
  pool: BufferPool,
  emit: EventListener,
): Promise<FileResult> {
  const started = performance.now();
  const offer = encodeOffer({ ...source, algorithm: algorithm.id });
  await conn.write(offer);
  const reply = await conn.expect([FrameType.Accept, FrameType.Refuse], 'OFFERED');
  if (reply.type === FrameType.Refuse) {
    const label = printableName(source.name);
    return failed(source, new FerryError(reply.code, `${label}: refused by the receiver: ${reply.message}`, { remote: true }), started);
  }
  if (reply.offset !== 0) {
    throw new FerryError('ERR_UNEXPECTED_FRAME', `receiver asked to resume at ${reply.offset}, which this version cannot do`);
  }
  emit({ event: 'start', side: 'send', name: source.name, bytes: source.size, peer: conn.peer });
  const digest = await streamFile(conn, source, algorithm, pool, progressReporter(emit, {
    side: 'send',
    name: source.name,
    bytes: source.size,
    peer: conn.peer,
  }));
  await conn.write(encodeEnd(digest, digestOf(algorithm, payloadOf(offer))));
  const verdict = await conn.expect([FrameType.Verdict], 'AWAIT_VERDICT');
  const seconds = (performance.now() - started) / 1000;
  const hash = { algorithm: algorithm.name, digest: digest.toString('hex') };
  if (verdict.code === 'OK' && !verdict.digest.equals(digest)) {
    // Only a damaged VERDICT can say OK with another digest: do not believe it.
    const message = `${printableName(source.name)}: the receiver's verdict does not carry this file's digest`;
    return { name: source.name, path: source.path, bytes: source.size, code: 'ERR_HASH_MISMATCH', message, hash, seconds };
  }
  if (verdict.code === 'OK') {
    emit({ event: 'sent', name: source.name, bytes: source.size, hash, seconds });
    return { name: source.name, path: source.path, bytes: source.size, code: 'OK', message: 'verified', hash, seconds };
  }
  const theirs = verdict.digest.length > 0 ? ` (receiver computed ${verdict.digest.toString('hex')})` : '';
  const message = `${printableName(source.name)}: ${verdict.message || verdict.code}${theirs}`;
  return { name: source.name, path: source.path, bytes: source.size, code: verdict.code, message, hash, seconds };
}

/** Streams the file's bytes as DATA frames; returns the digest of what was sent. */
async function streamFile(
  conn: Connection,
  source: SourceFile,
  algorithm: HashAlgorithm,
  pool: BufferPool,
  progress: (done: number) => void,
): Promise<Buffer> {
  const handle = await open(source.path, 'r');
  try {
    const before = await handle.stat();
    const hasher = algorithm.create();
    let sent = 0;
    let written = 0;
    progress(0);
    while (sent < source.size) {
      // A failed connection may never call back for buffers it held.
      const buffer = await Promise.race([pool.acquire(), conn.failed]);
      if (conn.error) {
        pool.release(buffer);
        throw conn.error;
      }
      const want = Math.min(pool.chunkSize, source.size - sent);
      const got = await readChunk(handle, buffer, want, sent);
      if (got < want) {
        pool.release(buffer);
        throw new FerryError('ERR_SOURCE_CHANGED', `${source.path}: file shrank while being sent`);
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
    const after = await handle.stat();
    // ctime too: a rewrite that puts the mtime back (cp -p, rsync -t, tar) cannot reset it.
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.ctimeMs !== before.ctimeMs || before.size !== source.size) {
      throw new FerryError('ERR_SOURCE_CHANGED', `${source.path}: file changed while being sent`);
    }
    return hasher.digest();
  } finally {
    await handle.close();
  }
}

function failed(source: SourceFile, error: FerryError, started: number): FileResult {
  return {
    name: source.name,
    path: source.path,
    bytes: source.size,
    code: error.code,
    message: error.message,
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
