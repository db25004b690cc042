/** The token bucket of --limit-rate (src/rate-limit.ts), on an injected clock: no timers, no sockets. */
import { describe, expect, test } from 'vitest';
import { MIN_RATE, RateLimiter, burstFor, parseRate, rateLimiter, throttleReads } from '../../src/rate-limit.js';
import type { FerryError } from '../../src/protocol/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A clock the test moves by hand. */
function manualClock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RateLimiter', () => {
  test('a full bucket lets the burst through at once; the next byte waits for its tokens', () => {
    const clock = manualClock();
    const limiter = new RateLimiter(100 * KiB, { burst: 10 * KiB, now: clock.now });
    expect(limiter.take(10 * KiB)).toBe(0);
    // 1 KiB of debt at 100 KiB/s: 10 ms.
    expect(limiter.take(KiB)).toBe(10);
    expect(limiter.delay()).toBe(10);
    clock.advance(4);
    expect(limiter.delay()).toBe(6);
    clock.advance(6);
    expect(limiter.delay()).toBe(0);
  });

  test('a take larger than the bucket goes, into debt, and the debt is its size over the rate', () => {
    const clock = manualClock();
    const limiter = new RateLimiter(MiB, { burst: 64 * KiB, now: clock.now });
    // 1 MiB frame with 64 KiB in the bucket: 960 KiB of debt, 937.5 ms at 1 MiB/s.
    expect(limiter.take(MiB)).toBe(938);
  });

  test('an idle spell refills to the burst, never beyond: no saving up for a flood', () => {
    const clock = manualClock();
    const limiter = new RateLimiter(10 * KiB, { burst: 16 * KiB, now: clock.now });
    limiter.take(16 * KiB);
    clock.advance(3_600_000);
    expect(limiter.take(16 * KiB)).toBe(0);
    expect(limiter.take(1)).toBeGreaterThan(0);
  });

  test('whoever writes only when out of debt never gets ahead of rate x elapsed + burst, whatever the piece sizes', () => {
    const clock = manualClock();
    const rate = 200 * KiB;
    const burst = burstFor(rate);
    const limiter = new RateLimiter(rate, { now: clock.now });
    const start = clock.now();
    let written = 0;
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const piece = 1 + (seed % (3 * burst));
      // The sender's order: take, wait out the debt, then write.
      clock.advance(limiter.take(piece));
      written += piece;
      expect(written).toBeLessThanOrEqual((rate * (clock.now() - start)) / 1000 + burst + 1);
    }
    // And not much slower either: the bucket wastes no more than its rounding (1 ms per wait).
    expect(written).toBeGreaterThan((rate * (clock.now() - start - 2000)) / 1000);
  });

  test('a clock that steps back gives no tokens and no debt', () => {
    const clock = manualClock();
    const limiter = new RateLimiter(MIN_RATE, { burst: MIN_RATE, now: clock.now });
    limiter.take(MIN_RATE);
    clock.advance(-500);
    expect(limiter.take(0)).toBe(0);
    expect(limiter.take(1)).toBe(1);
  });

  test('the burst is a tenth of a second of the rate, within 16 KiB and 1 MiB', () => {
    expect(burstFor(16 * KiB)).toBe(16 * KiB);
    expect(burstFor(MiB)).toBe(Math.floor(MiB / 10));
    expect(burstFor(10 * MiB)).toBe(MiB);
    expect(burstFor(1024 * MiB)).toBe(MiB);
  });
});

describe('throttleReads: the receiver stops reading while the shared bucket is in debt', () => {
  function fakeConn(): { paused: number; resumed: number; pauseData(): void; resumeData(): void; closed: Promise<void>; close(): void } {
    let close!: () => void;
    const conn = {
      paused: 0,
      resumed: 0,
      pauseData: () => void conn.paused++,
      resumeData: () => void conn.resumed++,
      closed: new Promise<void>((resolve) => (close = resolve)),
      close: () => close(),
    };
    return conn;
  }

  test('within the burst nothing pauses; over it, one pause, and one resume once the debt is paid', async () => {
    const limiter = new RateLimiter(1000 * KiB, { burst: 32 * KiB });
    const conn = fakeConn();
    const read = throttleReads(conn, limiter);
    read(16 * KiB);
    read(16 * KiB);
    expect(conn.paused).toBe(0);
    read(8 * KiB);
    read(8 * KiB); // delivered from the same socket read: no second pause
    expect(conn.paused).toBe(1);
    await expect.poll(() => conn.resumed, { timeout: 2000, interval: 5 }).toBe(1);
    expect(limiter.delay()).toBe(0);
    conn.close();
  });

  test('two connections share one bucket: the second is paused by the first one\'s bytes', () => {
    const limiter = new RateLimiter(MIN_RATE, { burst: MIN_RATE });
    const a = fakeConn();
    const b = fakeConn();
    throttleReads(a, limiter)(MIN_RATE);
    throttleReads(b, limiter)(1);
    expect([a.paused, b.paused]).toEqual([0, 1]);
    a.close();
    b.close();
  });
});

describe('parseRate and rateLimiter', () => {
  test.each([
    ['65536', 65536],
    ['16K', 16 * KiB],
    ['16k', 16 * KiB],
    ['500KiB', 500 * KiB],
    ['1.5M', 1.5 * MiB],
    ['2G', 2 * 1024 * MiB],
    ['1MB/s', MiB],
    ['100b', 100],
  ])('%s is %d bytes per second', (text, bytes) => {
    expect(parseRate(text)).toBe(bytes);
  });

  test.each(['', 'fast', '-1K', '1T', '1.5.2M', 'K', '1 K K', '0x10'])('%j is no rate', (text) => {
    expect(parseRate(text)).toBeUndefined();
  });

  test('the library takes a whole number of at least 16 KiB/s, else ERR_USAGE', () => {
    expect(rateLimiter(undefined)).toBeUndefined();
    expect(rateLimiter(MIN_RATE)?.rate).toBe(MIN_RATE);
    for (const bad of [MIN_RATE - 1, 0, -5, 1.5 * MIN_RATE + 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => rateLimiter(bad)).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }) as FerryError);
    }
  });
});
