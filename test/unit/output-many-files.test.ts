/**
 * Many files on a terminal (src/output/many-files.ts): a short line each up
 * to 100 files per sender, then a running count at most every 10 s, and the
 * summary; -v lists every file in full; --json is every event. A fake clock
 * stands for time, one second per file.
 */
import { describe, expect, test } from 'vitest';
import type { FerryEvent, ReceivedEvent, SentEvent } from '../../src/events.js';
import { Output } from '../../src/output/index.js';
import { FakeTty } from '../support/terminal.js';

const DIGEST = '0123456789abcdef'.repeat(4);
const KiB = 1024;

/** An 80-column terminal, unless a test reads long lines whole. */
function terminal(options: { verbose?: boolean; json?: boolean; columns?: number } = {}): { output: Output; screen: () => string[]; tick: () => void } {
  let now = 5_000;
  const stdout = new FakeTty({ columns: options.columns ?? 80 });
  const output = new Output({ json: options.json ?? false, quiet: false, verbose: options.verbose ?? false, bars: false, out: stdout, err: new FakeTty({ tty: false }), now: () => now });
  return { output, screen: () => stdout.screen(), tick: () => void (now += 1000) };
}

function received(i: number, peer = '10.0.0.2:40001'): ReceivedEvent {
  const name = `f${String(i).padStart(3, '0')}.txt`;
  return { event: 'received', name, path: `in/${name}`, bytes: KiB, resumedFrom: 0, seconds: 0.01, peer, hash: { algorithm: 'blake3', digest: DIGEST } };
}

function sent(i: number): SentEvent {
  return { event: 'sent', name: `f${String(i).padStart(3, '0')}.txt`, bytes: KiB, transferred: KiB, resumedFrom: 0, seconds: 0.01, hash: { algorithm: 'blake3', digest: DIGEST } };
}

const RECEIVE_SUMMARY: FerryEvent = { event: 'summary', side: 'receive', files: 250, directories: 0, bytes: 250 * KiB, failures: 0, exitCode: 0, seconds: 250 };

describe('the receiver', () => {
  test('250 files from one sender: 100 short lines, then a count every 10 s, then the summary', () => {
    const { output, screen, tick } = terminal();
    for (let i = 1; i <= 250; i++) {
      output.handle(received(i));
      tick();
    }
    output.handle(RECEIVE_SUMMARY);
    const shown = screen();
    expect(shown.slice(0, 3)).toEqual(['from 10.0.0.2:40001:', 'received f001.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified', 'received f002.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified']);
    expect(shown.filter((line) => line.startsWith('received f'))).toHaveLength(100);
    expect(shown.slice(101)).toEqual([
      'over 100 files from 10.0.0.2:40001: counting instead of listing (-v lists each)',
      ...[111, 121, 131, 141, 151, 161, 171, 181, 191, 201, 211, 221, 231, 241].map((n) => `received ${n} files from 10.0.0.2:40001 so far, ${n}.0 KiB, each verified`),
      'received 250 files, 250.0 KiB in 4 min 10 s (1.0 KiB/s), all verified',
    ]);
  });

  test('two senders at once: each line under the sender that sent it, and each sender counted on its own', () => {
    const { output, screen } = terminal();
    for (let i = 1; i <= 101; i++) output.handle(received(i, 'A:1'));
    output.handle(received(1, 'B:2'));
    output.handle(received(2, 'B:2'));
    output.handle(received(102, 'A:1'));
    output.handle(received(3, 'B:2'));
    expect(screen().slice(100)).toEqual([
      'received f100.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified',
      'over 100 files from A:1: counting instead of listing (-v lists each)',
      'from B:2:',
      'received f001.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified',
      'received f002.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified',
      // A's 102nd file: counted, no line (not 10 s yet); B's next file needs no new heading.
      'received f003.txt: 1.0 KiB, 0.01 s, 100.0 KiB/s, verified',
    ]);
  });

  test('-v: every file in its long line, with its digest, however many', () => {
    const { output, screen } = terminal({ verbose: true, columns: 300 });
    for (let i = 1; i <= 150; i++) output.handle(received(i));
    const shown = screen();
    expect(shown).toHaveLength(150);
    expect(shown[149]).toBe(`received f150.txt from 10.0.0.2:40001: 1.0 KiB in 0.01 s (100.0 KiB/s), blake3 ${DIGEST} verified, saved as in/f150.txt`);
  });

  test('--json: every received event, every field, however many', () => {
    const { output, screen } = terminal({ json: true, columns: 1000 });
    for (let i = 1; i <= 150; i++) output.handle(received(i));
    // Held for one write until the next turn of the event loop, or stop().
    output.stop();
    const events = screen().map((line) => JSON.parse(line) as ReceivedEvent);
    expect(events).toHaveLength(150);
    expect(events[149]).toEqual(received(150));
  });
});

describe('the sender', () => {
  const plan: FerryEvent = { event: 'plan', files: 250, directories: 2, bytes: 250 * KiB };
  const summary: FerryEvent = { event: 'summary', side: 'send', files: 250, directories: 2, bytes: 250 * KiB, failures: 0, exitCode: 0, seconds: 250 };

  test('250 files: no line each, a count every 10 s, then the summary', () => {
    const { output, screen, tick } = terminal();
    output.handle(plan);
    output.handle({ event: 'sent', name: 'd', bytes: 0, directory: true, transferred: 0, resumedFrom: 0, seconds: 0 });
    for (let i = 1; i <= 250; i++) {
      tick();
      output.handle(sent(i));
    }
    output.handle(summary);
    expect(screen()).toEqual([
      ...Array.from({ length: 25 }, (_, k) => `sent ${(k + 1) * 10} of 250 files so far, ${(k + 1) * 10}.0 KiB of 250.0 KiB`),
      'sent 250 files and 2 folders, 250.0 KiB in 4 min 10 s (1.0 KiB/s), all verified',
    ]);
  });

  test('250 files in under 10 s: the summary alone', () => {
    const { output, screen } = terminal();
    output.handle(plan);
    for (let i = 1; i <= 250; i++) output.handle(sent(i));
    output.handle(summary);
    expect(screen()).toEqual(['sent 250 files and 2 folders, 250.0 KiB in 4 min 10 s (1.0 KiB/s), all verified']);
  });

  test('-v: every file in its long line, with its digest', () => {
    const { output, screen } = terminal({ verbose: true, columns: 300 });
    output.handle(plan);
    for (let i = 1; i <= 250; i++) output.handle(sent(i));
    expect(screen()).toHaveLength(250);
    expect(screen()[249]).toBe(`sent f250.txt: 1.0 KiB in 0.01 s (100.0 KiB/s), blake3 ${DIGEST} verified by the receiver`);
  });
});
