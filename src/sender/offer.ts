/**
 * The two round trips of a non-eager offer (a large file or a stream), and
 * the sender's states around them (src/protocol/states.ts): IDLE → OFFERED
 * (OFFER out, ACCEPT or REFUSE awaited) → SENDING on ACCEPT (nothing may
 * come but HEARTBEAT) → AWAIT_VERDICT (END out, VERDICT awaited) → IDLE.
 *
 * Each state is entered before the write that prompts the peer's answer, so
 * an answer arriving while that write drains is judged by the right state.
 */
import type { SenderConnection } from '../connection.js';
import { FrameType } from '../protocol/constants.js';
import type { AcceptFrame, RefuseFrame, VerdictFrame } from '../protocol/messages.js';

/** Writes the OFFER and reads its answer; the sender is then SENDING (ACCEPT) or back in IDLE (REFUSE). */
export async function offer(conn: SenderConnection, frame: Buffer): Promise<AcceptFrame | RefuseFrame> {
  conn.enter('OFFERED');
  await conn.write(frame);
  const reply = await conn.expect('OFFERED');
  // From here to END a VERDICT would be for bytes the receiver has not seen: SENDING fails it as it arrives.
  conn.enter(reply.type === FrameType.Accept ? 'SENDING' : 'IDLE');
  return reply;
}

/**
 * After END the receiver is only flushing and hashing: its VERDICT is due
 * within the timeout plus this long per byte of the file (one second per
 * 16 MiB), however many HEARTBEATs it sends meanwhile (docs/protocol.md,
 * section 4, rule 6).
 */
export const VERDICT_MS_PER_BYTE = 1000 / (16 * 1024 * 1024);

/** Writes END and reads the file's VERDICT (of a file of `size` bytes); the sender is then back in IDLE. */
export async function finish(conn: SenderConnection, end: Buffer, size: number): Promise<VerdictFrame> {
  conn.enter('AWAIT_VERDICT');
  await conn.write(end);
  const verdict = await conn.expect('AWAIT_VERDICT', { withinMs: conn.timeoutMs + Math.ceil(size * VERDICT_MS_PER_BYTE) });
  conn.enter('IDLE');
  return verdict;
}
