/**
 * The retry loop: a broken connection is tried again after a pause that
 * doubles each time, and the next attempt offers only what has no final
 * result yet (a cut large file resumes from the receiver's partial copy).
 * Until a first connection is established, wait.ts decides instead: a
 * receiver never reached is no broken connection, and is not retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffMs } from '../deadlines.js';
import { abortError, type ErrorCode, type FerryError } from '../protocol/errors.js';
import { runAttempt, type AttemptFailure, type SendContext } from './attempt.js';
import { untilReached } from './wait.js';
import type { Entry } from './walk.js';

/** A connection may fail in these ways and work the next time. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_CONNECT', 'ERR_CONNECTION_LOST', 'ERR_TIMEOUT', 'ERR_TRUNCATED', 'ERR_BUSY']);

export interface RetryPolicy {
  /** New connections after a broken one. */
  retries: number;
  /** Pause before the first retry. */
  firstDelayMs: number;
  /** --wait: how long to keep trying to reach the receiver the first time (0: fail at once). */
  waitMs: number;
}

/** True when a failed attempt is worth another connection. */
function retryable(error: FerryError, todo: readonly Entry[], signal: AbortSignal | undefined): boolean {
  // Standard input cannot be read twice.
  return RETRYABLE.has(error.code) && !todo.some((e) => e.kind === 'stdin') && !signal?.aborted;
}

/** Runs attempts until every entry has a result or a failure is not worth retrying; returns that failure. */
export async function sendWithRetries(entries: readonly Entry[], ctx: SendContext, policy: RetryPolicy): Promise<AttemptFailure | undefined> {
  let failure: AttemptFailure | undefined;
  let reached = false;
  for (let attempt = 0; ; attempt++) {
    const todo = entries.filter((e) => !ctx.results.has(e));
    const cutIn = failure?.during;
    const run = (): Promise<AttemptFailure | undefined> => runAttempt(todo, ctx, cutIn);
    failure = reached ? await run() : await untilReached(run, policy.waitMs, ctx.signal);
    if (!failure) return undefined;
    reached ||= !failure.unreached;
    // Never reached (and --wait, if any, is over): a wrong address or no receiver, which no backoff cures.
    if (!reached) return failure;
    const { error } = failure;
    if (attempt >= policy.retries || !retryable(error, todo, ctx.signal)) return failure;
    const delayMs = backoffMs(attempt, policy.firstDelayMs);
    ctx.emit({ event: 'retry', attempt: attempt + 1, of: policy.retries, delaySeconds: delayMs / 1000, code: error.code, message: error.message });
    try {
      await sleep(delayMs, undefined, { signal: ctx.signal });
    } catch {
      return { error: abortError(ctx.signal), during: failure.during };
    }
  }
}
