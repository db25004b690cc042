/**
 * The retry loop: a broken connection is tried again after a pause that
 * doubles each time, and the next attempt offers only what has no final
 * result yet (a cut large file resumes from the receiver's partial copy).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { abortError, type ErrorCode, type FerryError } from '../protocol/errors.js';
import { runAttempt, type AttemptFailure, type SendContext } from './attempt.js';
import type { Entry } from './walk.js';

/** A connection may fail in these ways and work the next time. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_CONNECT', 'ERR_CONNECTION_LOST', 'ERR_TIMEOUT', 'ERR_TRUNCATED', 'ERR_BUSY']);
const MAX_RETRY_DELAY_MS = 16_000;

export interface RetryPolicy {
  /** New connections after a broken one. */
  retries: number;
  /** Pause before the first retry. */
  firstDelayMs: number;
}

/** The pause before retry `attempt + 1` (0-based `attempt`). */
export function retryDelayMs(attempt: number, firstDelayMs: number): number {
  return Math.min(firstDelayMs * 2 ** attempt, MAX_RETRY_DELAY_MS);
}

/** True when a failed attempt is worth another connection. */
function retryable(error: FerryError, todo: readonly Entry[], signal: AbortSignal | undefined): boolean {
  // Standard input cannot be read twice.
  return RETRYABLE.has(error.code) && !todo.some((e) => e.kind === 'stdin') && !signal?.aborted;
}

/** Runs attempts until every entry has a result or a failure is not worth retrying; returns that failure. */
export async function sendWithRetries(entries: readonly Entry[], ctx: SendContext, policy: RetryPolicy): Promise<AttemptFailure | undefined> {
  let failure: AttemptFailure | undefined;
  for (let attempt = 0; ; attempt++) {
    const todo = entries.filter((e) => !ctx.results.has(e));
    failure = await runAttempt(todo, ctx, failure?.during);
    if (!failure) return undefined;
    const { error } = failure;
    if (attempt >= policy.retries || !retryable(error, todo, ctx.signal)) return failure;
    const delayMs = retryDelayMs(attempt, policy.firstDelayMs);
    ctx.emit({ event: 'retry', attempt: attempt + 1, of: policy.retries, delaySeconds: delayMs / 1000, code: error.code, message: error.message });
    try {
      await sleep(delayMs, undefined, { signal: ctx.signal });
    } catch {
      return { error: abortError(ctx.signal), during: failure.during };
    }
  }
}
