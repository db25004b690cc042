/** progressReporter (src/events.ts): how often a file's progress reaches the output. */
import { afterEach, expect, test, vi } from 'vitest';
import { PROGRESS_INTERVAL_MS, progressReporter, type FerryEvent } from '../../src/events.js';

afterEach(() => vi.useRealTimers());

function reporter(bytes: number): { report(done: number): void; dones: number[] } {
  const dones: number[] = [];
  const report = progressReporter((e: FerryEvent) => e.event === 'progress' && dones.push(e.done), { side: 'send', name: 'f', bytes, peer: 'p:1' });
  return { report, dones };
}

test('a file: at most one event per interval, and always the last at 100%', () => {
  vi.useFakeTimers({ now: 0 });
  vi.advanceTimersByTime(1000);
  const { report, dones } = reporter(100);
  for (let done = 10; done <= 90; done += 10) {
    report(done);
    vi.advanceTimersByTime(PROGRESS_INTERVAL_MS / 2);
  }
  report(100);
  expect(dones).toEqual([10, 30, 50, 70, 90, 100]);
});

test('a stream of unknown size (bytes 0) is throttled the same way, not one event per chunk', () => {
  vi.useFakeTimers({ now: 0 });
  vi.advanceTimersByTime(1000);
  const { report, dones } = reporter(0);
  for (let i = 1; i <= 1000; i++) report(i * 65536);
  expect(dones).toEqual([65536]);
  vi.advanceTimersByTime(PROGRESS_INTERVAL_MS);
  report(2000 * 65536);
  expect(dones).toEqual([65536, 2000 * 65536]);
});
