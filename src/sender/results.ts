/**
 * What became of each file and folder: the FileResult type, the judging of a
 * VERDICT, and the one owner of the results of a send across its attempts.
 */
import type { EventListener, HashInfo } from '../events.js';
import type { HashAlgorithm } from '../hash.js';
import { exitCodeOf } from '../exit-codes.js';
import { type ErrorCode, type FerryError } from '../protocol/errors.js';
import type { VerdictFrame } from '../protocol/messages.js';
import { peerText, printableName } from '../printable.js';
import type { Entry } from './walk.js';

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
  /** Not sent: the receiver holds this file with the same content (code 'OK'). */
  unchanged?: true;
  /** Content bytes this run put in DATA frames. */
  transferred: number;
  /** Bytes the receiver already held from a cut transfer. */
  resumedFrom: number;
  seconds: number;
}

/** An offer whose VERDICT has come: what the sender sent, to hold the verdict against. */
export interface Judged {
  entry: Entry;
  algorithm: HashAlgorithm;
  /** The content digest this side sent in END (empty for a folder). */
  digest: Buffer;
  verdict: VerdictFrame;
  /** performance.now() when the offer went out. */
  started: number;
  /** Content bytes this run sent. */
  transferred: number;
  /** Bytes the receiver already held. */
  resumedFrom: number;
}

/** The result of one offer from its VERDICT. */
export function judge({ entry, algorithm, digest, verdict, started, transferred, resumedFrom }: Judged): FileResult {
  const directory = entry.kind === 'directory';
  const base = {
    name: entry.name,
    path: entry.path,
    bytes: entry.kind === 'file' ? entry.size : transferred + resumedFrom,
    transferred,
    resumedFrom,
    seconds: secondsSince(started),
    directory: directory || undefined,
    hash: directory ? undefined : { algorithm: algorithm.name, digest: digest.toString('hex') },
  };
  if (verdict.code === 'OK' && !directory && !verdict.digest.equals(digest)) {
    // Only a damaged VERDICT can say OK with another digest: do not believe it.
    return { ...base, code: 'ERR_HASH_MISMATCH', message: `${printableName(entry.name)}: the receiver's verdict does not carry this file's digest` };
  }
  if (verdict.code === 'OK') return { ...base, code: 'OK', message: 'verified' };
  if (verdict.code === 'ERR_NOT_HELD') return { ...base, code: 'ERR_TRANSFER', message: `${printableName(entry.name)}: ${NOT_A_PROBE}` };
  const theirs = !directory && verdict.digest.length > 0 && verdict.code === 'ERR_HASH_MISMATCH' ? ` (receiver computed ${verdict.digest.toString('hex')})` : '';
  // An eager offer's refusal comes as a verdict: word it as a refusal all the same.
  const refused = exitCodeOf(verdict.code) === 4 ? 'refused by the receiver: ' : '';
  return { ...base, code: verdict.code, message: `${printableName(entry.name)}: ${refused}${said(verdict)}${theirs}` };
}

/** A REFUSE of a non-eager offer, as the file's result: the session goes on. */
export function refused(entry: Entry, refusal: { code: ErrorCode; message: string }, started: number): FileResult {
  if (refusal.code === 'ERR_NOT_HELD') return { ...unsent(entry, started), code: 'ERR_TRANSFER', message: `${printableName(entry.name)}: ${NOT_A_PROBE}` };
  return { ...unsent(entry, started), code: refusal.code, message: `${printableName(entry.name)}: refused by the receiver: ${said(refusal)}` };
}

/** ERR_NOT_HELD only ever answers a probe (exit 0); for anything else it is the peer's mistake, and the file was not delivered. */
const NOT_A_PROBE = 'the receiver answered ERR_NOT_HELD, which only answers a probe';

/** A probed file the receiver holds with this content (`digest`, ours, equal to its): not sent, and as good as delivered. */
export function unchanged(entry: Entry, algorithm: HashAlgorithm, digest: Buffer, started: number): FileResult {
  return { ...unsent(entry, started), code: 'OK', message: 'unchanged', unchanged: true, hash: { algorithm: algorithm.name, digest: digest.toString('hex') } };
}

/** What the peer said, escaped and quoted (it must never pass for ferry's own words); its code when it said nothing. */
function said({ code, message }: { code: ErrorCode; message: string }): string {
  return message === '' ? code : peerText(message);
}

/** A file that failed with `error` before any of it was delivered. `started` 0: it never started. */
export function failed(entry: Entry, error: FerryError, started: number): FileResult {
  return { ...unsent(entry, started), code: error.code, message: error.message };
}

function unsent(entry: Entry, started: number): Omit<FileResult, 'code' | 'message'> {
  return {
    name: entry.name,
    path: entry.path,
    bytes: entry.kind === 'file' ? entry.size : 0,
    directory: entry.kind === 'directory' || undefined,
    transferred: 0,
    resumedFrom: 0,
    seconds: started ? secondsSince(started) : 0,
  };
}

function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

/**
 * The results of one send, across its attempts: each entry's final result,
 * reported once as it is known. An entry without one is sent (again) by the
 * next attempt.
 */
export class Results {
  private readonly byEntry = new Map<Entry, FileResult>();
  private readonly emit: EventListener;

  constructor(emit: EventListener) {
    this.emit = emit;
  }

  has(entry: Entry): boolean {
    return this.byEntry.has(entry);
  }

  /**
   * Keeps `result` as final and reports it. Returns false, keeping nothing,
   * for ERR_BUSY: the file was arriving over another connection, and is
   * offered again by the next attempt.
   */
  record(entry: Entry, result: FileResult): boolean {
    if (result.code === 'ERR_BUSY') return false;
    this.byEntry.set(entry, result);
    if (result.unchanged && result.hash) {
      this.emit({ event: 'unchanged', side: 'send', name: result.name, bytes: result.bytes, hash: result.hash });
    } else if (result.code === 'OK') {
      const { name, bytes, hash, directory, transferred, resumedFrom, seconds } = result;
      this.emit({ event: 'sent', name, bytes, hash, directory, transferred, resumedFrom, seconds });
    } else {
      this.emit({ event: 'error', code: result.code, message: result.message, exitCode: exitCodeOf(result.code), name: result.name });
    }
    return true;
  }

  /** Every entry still without a result fails with `error` (not reported one by one: the session's error is). */
  failRest(entries: readonly Entry[], error: FerryError): void {
    for (const entry of entries) if (!this.byEntry.has(entry)) this.byEntry.set(entry, failed(entry, error, 0));
  }

  /** The results of `entries`, in their order; each must have one. */
  of(entries: readonly Entry[]): FileResult[] {
    return entries.map((e) => this.byEntry.get(e)!);
  }
}
