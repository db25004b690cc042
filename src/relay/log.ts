/**
 * The relay's log: one event per pairing, per pair's end and per refusal
 * (`ferry relay --json` prints each as a JSON line). Rate-limited per kind
 * as the receiver's admission lines are, so a flood of connections is not a
 * flood of lines. Nothing a client sent appears in it but the first 16 hex
 * digits of a well-formed token (a room name, public by design) and the
 * nameplate it stands for.
 */
import { LogLimiter } from '../receiver/admission.js';
import type { PairEnd } from './pair.js';

export type RefusalReason =
  /** The line is none of the three requests. */
  | 'bad-handshake'
  /** RELAY_MAX_LINE bytes without a newline. */
  | 'long-line'
  /** No whole line within `lineMs`. */
  | 'slow-line'
  /** Bytes after the line, before `ok`. */
  | 'impatient'
  | 'per-source'
  | 'total'
  /** Closed before its line to make room for a newcomer (per-source or total limit). */
  | 'evicted'
  | 'waiting'
  /** Every nameplate is held. */
  | 'no-nameplate'
  /** No partner within `waitMs`. */
  | 'wait-timeout';

export type RelayEvent =
  | { event: 'listening'; host: string; port: number }
  | { event: 'paired'; room: string; nameplate?: number; sources: [string, string]; waitedSeconds: number; message: string }
  | { event: 'unpaired'; room: string; nameplate?: number; bytes: number; seconds: number; reason: PairEnd; message: string }
  | { event: 'refused'; reason: RefusalReason; source: string; room?: string; message: string };

export type RelayEventListener = (event: RelayEvent) => void;

/** The part of a token a log line shows: enough to tell rooms apart, as the transit relay logs them. */
export function roomLabel(token: string): string {
  return token.slice(0, 16);
}

/** Passes events on, at most a burst of each kind per interval; the next one that goes says how many did not. */
export function rateLimitedLog(emit: RelayEventListener): RelayEventListener {
  const limiter = new LogLimiter(() => {});
  return (event) => {
    if (event.event === 'listening') return emit(event);
    const allowed = limiter.allow(event.event === 'refused' ? `refused ${event.reason}` : event.event);
    if (allowed) emit({ ...event, message: event.message + allowed.suffix });
  };
}
