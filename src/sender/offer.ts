/**
 * The two round trips of a non-eager offer (a large file or a stream):
 * OFFER answered by ACCEPT or REFUSE, and END answered by VERDICT.
 */
import type { SenderConnection } from '../connection.js';
import type { AcceptFrame, RefuseFrame, VerdictFrame } from '../protocol/messages.js';

/** Writes the OFFER and reads its answer. */
export async function offer(conn: SenderConnection, frame: Buffer): Promise<AcceptFrame | RefuseFrame> {
  await conn.write(frame);
  return conn.expect('OFFERED');
}

/** Writes END and reads the file's VERDICT. */
export async function finish(conn: SenderConnection, end: Buffer): Promise<VerdictFrame> {
  await conn.write(end);
  return conn.expect('AWAIT_VERDICT');
}
