/**
 * Events of a transfer, as the library hands them to `onEvent` and as
 * `--json` prints them (one object per line). Adding a field is compatible;
 * renaming or removing one is not.
 */
import type { ErrorCode } from './protocol/errors.js';

export interface HashInfo {
  /** 'blake3' or 'sha256'. */
  algorithm: string;
  /** Lower-case hex, as b3sum or sha256sum print it. */
  digest: string;
}

/** A side waits for its peer: bound to a port (`host`, `port`), or seated at a relay (`relay`). */
export type ListeningEvent = DirectListeningEvent | RelayListeningEvent;

export interface DirectListeningEvent {
  event: 'listening';
  host: string;
  port: number;
  /** The one-time code the peer must give; absent with --insecure. */
  code?: string;
  /** Present (true) when this side runs without a code or encryption. */
  insecure?: true;
  /** Present (true) when it announces itself on the LAN (src/discovery/announce.ts): a sender may omit --to. */
  announcing?: true;
  /** Present ('send') when the sender listens (`send --listen`); a receiver's event has none. */
  side?: 'send';
}

export interface RelayListeningEvent {
  event: 'listening';
  /** The relay, as HOST:PORT ([IPV6]:PORT). */
  relay: string;
  /** The code to give the peer: the room's number, then the secret words. Absent with --insecure. */
  code?: string;
  insecure?: true;
  /** Who waits there: the receiver (receive --relay) or the sender (send --relay without a code). */
  side: 'send' | 'receive';
}

/** A file begins to move (after the receiver accepted it). */
export interface StartEvent {
  event: 'start';
  side: 'send' | 'receive';
  name: string;
  bytes: number;
  peer: string;
  /** Set when the transfer resumes a kept partial file: the bytes not sent again. */
  resumedFrom?: number;
}

/** Throttled: at most every 250 ms per file, plus one at 100%. */
export interface ProgressEvent {
  event: 'progress';
  side: 'send' | 'receive';
  name: string;
  /** Bytes done so far (written to the socket, or to disk). */
  done: number;
  bytes: number;
  peer: string;
}

export interface ReceivedEvent {
  event: 'received';
  /** The relative path as sent ('/' between components). */
  name: string;
  /** Where the file now is, as the receiver's --dir was given plus the name ('-' for --stdout). */
  path: string;
  bytes: number;
  /** Absent for a directory. */
  hash?: HashInfo;
  /** Present (true) for a directory. */
  directory?: true;
  /** Bytes that were already here from an interrupted transfer (0 if none). */
  resumedFrom: number;
  seconds: number;
  peer: string;
}

export interface SentEvent {
  event: 'sent';
  name: string;
  bytes: number;
  /** Absent for a directory. */
  hash?: HashInfo;
  directory?: true;
  /** Content bytes sent in DATA frames by this run (less than `bytes` after a resume). */
  transferred: number;
  /** Where this run started: the bytes the receiver already held (0 if none). */
  resumedFrom: number;
  seconds: number;
}

/**
 * A file not sent because the receiver already holds it with the same
 * content (its probe's answer carried this very digest). Not a failure.
 */
export interface UnchangedEvent {
  event: 'unchanged';
  side: 'send' | 'receive';
  name: string;
  bytes: number;
  hash: HashInfo;
  /** Receiving side: where the file is. */
  path?: string;
  /** Receiving side: which sender asked. */
  peer?: string;
  /** Receiving side: a whole folder was asked about at once, and all its files are the same (`hash` is the folder digest). */
  directory?: true;
}

/** The sender's list, once the paths are walked: for an overall progress bar. */
export interface PlanEvent {
  event: 'plan';
  files: number;
  directories: number;
  bytes: number;
}

/** Something not sent: a symlink or special file inside a tree. Not a failure. */
export interface SkippedEvent {
  event: 'skipped';
  name: string;
  reason: 'symlink' | 'special';
}

/** The connection broke; the sender tries again after a pause, resuming. */
export interface RetryEvent {
  event: 'retry';
  attempt: number;
  of: number;
  delaySeconds: number;
  code: ErrorCode;
  message: string;
}

/** A sender without --to found its receiver on the LAN: the one at this address proved it holds the code. */
export interface FoundEvent {
  event: 'found';
  host: string;
  port: number;
  /** Receivers tried until this one was chosen, this one included (the others did not hold the code, or could not be reached). */
  candidates: number;
}

/** The last event of a `send`, or of a receiver when it stops. */
export interface SummaryEvent {
  event: 'summary';
  side: 'send' | 'receive';
  files: number;
  directories: number;
  /** Content bytes of the files verified. */
  bytes: number;
  /** Files the receiver already held with the same content: not sent, not in `files` or `bytes`, not failures. */
  unchanged?: number;
  failures: number;
  exitCode: number;
  seconds: number;
}

export interface ErrorEvent {
  event: 'error';
  code: ErrorCode;
  message: string;
  /** The process exit code this error maps to. */
  exitCode: number;
  /** The file concerned, when there is one. */
  name?: string;
  /** Receiving side: which sender. */
  peer?: string;
}

export type FerryEvent =
  | ListeningEvent
  | StartEvent
  | ProgressEvent
  | ReceivedEvent
  | SentEvent
  | UnchangedEvent
  | ErrorEvent
  | PlanEvent
  | SkippedEvent
  | RetryEvent
  | FoundEvent
  | SummaryEvent;

export type EventListener = (event: FerryEvent) => void;

/** Minimum time between two progress events of one file. */
export const PROGRESS_INTERVAL_MS = 250;

/**
 * Returns a function to call with the running byte count: it emits a
 * progress event at most every PROGRESS_INTERVAL_MS, and always at 100%
 * (for a file: a stream of unknown size is throttled throughout).
 */
export function progressReporter(
  emit: EventListener,
  base: Omit<ProgressEvent, 'event' | 'done'>,
): (done: number) => void {
  let last = 0;
  return (done) => {
    const now = performance.now();
    // A stream's size is not known (bytes 0): it has no 100% to always show, only the throttle.
    const complete = base.bytes > 0 && done >= base.bytes;
    if (!complete && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    emit({ event: 'progress', ...base, done });
  };
}
