/**
 * Before the first connection: a send whose receiver was never reached
 * fails at once, unless --wait asked it to keep trying for a while (a
 * script that starts the sender before the receiver). A connection that
 * never got through is almost always a wrong address, or a receiver not
 * started yet: backing off and retrying for half a minute only delays the
 * one line that says so. Retries after a connection was lost stay with
 * retry.ts (--retries).
 *
 * "Reached" means the dial and the secure handshake both succeeded (with
 * --insecure, the dial): only then has the peer proven to be the receiver
 * holding our code, so the address was right and the receiver was running.
 * Something that accepts TCP but fails the handshake (another service on
 * that port, a wrong host) is the same mistake as a refused connection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError, abortError, type ErrorCode } from '../protocol/errors.js';
import type { AttemptFailure } from './attempt.js';

/**
 * How often --wait tries again: short, since the receiver appears at an
 * unknown moment and a refused connect on a LAN costs next to nothing; not
 * shorter, since each try that does get in also pays a handshake.
 */
export const WAIT_INTERVAL_MS = 250;

/** A receiver not there yet fails in these ways; any other failure (a wrong code, a mismatch) is final at once. */
const NOT_YET: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_CONNECT', 'ERR_TIMEOUT', 'ERR_CONNECTION_LOST', 'ERR_TRUNCATED', 'ERR_BUSY']);

/**
 * Runs `attempt` until it reaches the receiver, trying again every
 * WAIT_INTERVAL_MS while `waitMs` lasts (0: once). Returns the attempt's
 * own outcome once it got through; otherwise the last failure, saying how
 * long it waited. Each try is still bounded by the connect timeout, so the
 * whole wait is at most `waitMs` plus one timeout.
 */
export async function untilReached(
  attempt: () => Promise<AttemptFailure | undefined>,
  waitMs: number,
  signal: AbortSignal | undefined,
): Promise<AttemptFailure | undefined> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const failure = await attempt();
    if (!failure?.unreached || !NOT_YET.has(failure.error.code) || signal?.aborted) return failure;
    const left = deadline - performance.now();
    if (left <= 0) return waitMs > 0 ? { ...failure, error: waited(failure.error, waitMs) } : failure;
    try {
      await sleep(Math.min(WAIT_INTERVAL_MS, left), undefined, { signal });
    } catch {
      return { error: abortError(signal), during: failure.during, unreached: true };
    }
  }
}

function waited(error: FerryError, waitMs: number): FerryError {
  return new FerryError(error.code, `${error.message}; waited ${waitMs / 1000} s (--wait)`, { cause: error });
}
