/**
 * The in-memory socket pair behaves like a TCP connection where Connection
 * relies on it: delivery a tick later, half-close, destroy and reset, flow
 * control end to end, corking, and splits. If the double drifted from a
 * socket, the Connection tests built on it would prove nothing.
 */
import { once } from 'node:events';
import { describe, expect, test } from 'vitest';
import { cutAt, duplexPair } from '../support/duplex-pair.js';
import { within } from '../support/wire-peer.js';

describe('the duplex pair', () => {
  test('bytes arrive on the other end a tick later, one chunk per write, never inside write()', async () => {
    const [a, b] = duplexPair();
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    let called = false;
    a.write('one', () => (called = true));
    a.write('two');
    expect(got).toEqual([]);
    await within(once(b, 'data'), 'data');
    await within(
      new Promise<void>((resolve) => (got.length === 2 ? resolve() : b.once('data', () => resolve()))),
      'the second write',
    );
    expect(got).toEqual(['one', 'two']);
    expect(called).toBe(true);
    expect([a.remoteAddress, a.remotePort, b.remotePort]).toEqual(['127.0.0.1', 7878, 40001]);
  });

  test("end() is a half-close: the other end sees 'end' and can still answer", async () => {
    const [a, b] = duplexPair();
    const closed = once(a, 'close');
    b.resume();
    a.end('bye');
    await within(once(b, 'end'), "'end'");
    expect(a.writableEnded).toBe(true);
    const answer = new Promise<string>((resolve) => a.once('data', (c: Buffer) => resolve(c.toString())));
    b.end('ok');
    expect(await within(answer, 'the answer after our FIN')).toBe('ok');
    await within(closed, "'close' once both sides are done");
  });

  test("destroy() closes this end and the other sees 'end'; reset() gives the other an 'error'", async () => {
    const [a, b] = duplexPair();
    b.resume();
    a.destroy();
    expect(a.destroyed).toBe(true);
    await within(once(b, 'end'), "'end' after destroy");

    const [c, d] = duplexPair();
    const failed = once(d, 'error');
    // 'close' follows 'error' in the same tick: listen first.
    const closed = new Promise((resolve) => d.once('close', resolve));
    c.reset();
    const [err] = (await within(failed, "'error'")) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    await within(closed, "'close' after the error");
  });

  test('a paused reader holds the writer back: write() false, writableNeedDrain, then drain on resume', async () => {
    const [a, b] = duplexPair({ highWaterMark: 1024 });
    b.pause();
    let room = true;
    let writes = 0;
    while (room && writes < 100) {
      room = a.write(Buffer.alloc(512));
      writes++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(room).toBe(false);
    expect(a.writableNeedDrain).toBe(true);
    expect(b.readableLength).toBeGreaterThanOrEqual(1024);
    expect(b.isPaused()).toBe(true);
    const drained = once(a, 'drain');
    b.resume();
    await within(drained, "'drain'");
  });

  test('cork() sends a burst as one chunk; split cuts chunks on the wire; setNoDelay is recorded', async () => {
    const [a, b] = duplexPair({ split: cutAt(2, 5) });
    const got: string[] = [];
    b.on('data', (chunk: Buffer) => got.push(chunk.toString()));
    expect(a.setNoDelay(true)).toBe(a);
    expect(a.noDelay).toBe(true);
    a.cork();
    a.write('abc');
    a.write('defg');
    a.uncork();
    await within(
      new Promise<void>((resolve) => b.on('data', () => got.length === 3 && resolve())),
      'three pieces',
    );
    expect(got).toEqual(['ab', 'cde', 'fg']);
  });
});
