/** The sender's buffer pool (src/sender/source.ts), in memory: a wait given up for a failed connection loses no buffer. */
import { describe, expect, test } from 'vitest';
import { FerryError } from '../src/protocol/errors.js';
import { BufferPool } from '../src/sender/source.js';
import { within } from './support/files.js';

function failure(): { failed: Promise<never>; fail(err: FerryError): void } {
  let fail!: (err: FerryError) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});
  return { failed, fail };
}

describe('BufferPool.acquireUnless', () => {
  test('the connection fails while every buffer is held: the wait rejects with its code, and the buffer released next is free again, not lost to the wait', async () => {
    const pool = new BufferPool(16, 1);
    const held = await pool.acquire();
    const { failed, fail } = failure();
    const waiting = pool.acquireUnless(failed);
    fail(new FerryError('ERR_CONNECTION_LOST', 'gone'));
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    pool.release(held);
    await expect(within(pool.acquire(), 1000, 'acquire after the failed wait')).resolves.toBe(held);
  });

  test('a buffer that comes before any failure is handed over', async () => {
    const pool = new BufferPool(16, 1);
    const held = await pool.acquire();
    const waiting = pool.acquireUnless(failure().failed);
    pool.release(held);
    await expect(within(waiting, 1000, 'acquireUnless')).resolves.toBe(held);
  });
});
