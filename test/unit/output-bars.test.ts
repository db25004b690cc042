/**
 * The progress bars as a terminal shows them: events go into Output, the
 * bytes it writes to a fake TTY are replayed through a small VT100 model
 * (test/support/terminal.ts), and the tests read the screen's lines. Fake
 * timers drive cli-progress's redraws (10 a second) and the rate.
 */
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { FerryEvent } from '../../src/events.js';
import { Output } from '../../src/output/index.js';
import { FakeTty } from '../support/terminal.js';

const PEER = '127.0.0.1:7878';
const SENDER = '127.0.0.1:40001';
const KiB = 1024;
const MiB = 1024 * 1024;

let stderr: FakeTty;
let stdout: FakeTty;
let output: Output;

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
  stderr = new FakeTty({ columns: 120 });
  stdout = new FakeTty({ tty: false });
  output = new Output({ json: false, quiet: false, bars: true, out: stdout, err: stderr });
});

afterEach(() => {
  output.stop();
  vi.useRealTimers();
});

/** Feeds one event and lets `ms` of (fake) time pass, so cli-progress redraws. */
function feed(event: FerryEvent, ms = 250): string[] {
  output.handle(event);
  vi.advanceTimersByTime(ms);
  return stderr.screen();
}

function lineWith(screen: string[], start: string): string {
  const found = screen.find((l) => l.startsWith(start));
  if (found === undefined) throw new Error(`no line starting ${JSON.stringify(start)} on screen:\n${screen.join('\n')}`);
  return found;
}

function percent(line: string): number {
  const m = / (\d+)% /.exec(line);
  if (!m) throw new Error(`no percentage in ${JSON.stringify(line)}`);
  return Number(m[1]);
}

describe('the sender', () => {
  test('one file: the bar climbs with each progress event, then goes away', () => {
    feed({ event: 'plan', files: 1, directories: 0, bytes: 400 * KiB });
    const first = feed({ event: 'start', side: 'send', name: 'a.bin', bytes: 400 * KiB, peer: PEER });
    expect(lineWith(first, '↑ a.bin ')).toMatch(/ 0% 0 B\/400\.0 KiB /);
    const seen: number[] = [];
    for (const done of [100, 200, 300, 400].map((k) => k * KiB)) {
      const line = lineWith(feed({ event: 'progress', side: 'send', name: 'a.bin', done, bytes: 400 * KiB, peer: PEER }), '↑ a.bin ');
      seen.push(percent(line));
    }
    expect(seen).toEqual([25, 50, 75, 100]);
    expect(lineWith(stderr.screen(), '↑ a.bin ')).toContain('400.0 KiB/400.0 KiB');

    output.handle({ event: 'sent', name: 'a.bin', bytes: 400 * KiB, transferred: 400 * KiB, resumedFrom: 0, seconds: 1, hash: { algorithm: 'blake3', digest: 'ab'.repeat(32) } });
    vi.advanceTimersByTime(250);
    expect(stderr.screen().filter((l) => l.startsWith('↑'))).toEqual([]);
    expect(stderr.cursorHidden()).toBe(false);
    expect(stdout.text).toMatch(/^sent a\.bin: 400\.0 KiB, 1\.00 s, .* verified by the receiver\n$/);
  });

  test('several files: a total bar counts files and bytes across them', () => {
    feed({ event: 'plan', files: 3, directories: 0, bytes: 300 * KiB });
    expect(lineWith(stderr.screen(), 'total 0/3 files ')).toMatch(/ 0% /);
    const totals: string[] = [];
    for (const name of ['a', 'b', 'c']) {
      feed({ event: 'start', side: 'send', name, bytes: 100 * KiB, peer: PEER });
      const screen = feed({ event: 'progress', side: 'send', name, done: 50 * KiB, bytes: 100 * KiB, peer: PEER });
      expect(percent(lineWith(screen, `↑ ${name} `))).toBe(50);
      totals.push(lineWith(screen, 'total '));
      feed({ event: 'sent', name, bytes: 100 * KiB, transferred: 100 * KiB, resumedFrom: 0, seconds: 0.5, hash: { algorithm: 'blake3', digest: '00' } });
    }
    expect(totals.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['total 0/3', 'total 1/3', 'total 2/3']);
    expect(totals.map(percent)).toEqual([16, 50, 83]);
    // The per-file lines were printed above the bars, on stdout.
    expect(stdout.text.split('\n').filter(Boolean).map((l) => l.split(':')[0])).toEqual(['sent a', 'sent b', 'sent c']);
  });

  test('a stream of unknown size: bytes so far and the rate, no percentage', () => {
    feed({ event: 'start', side: 'send', name: 'stdin.log', bytes: 0, peer: PEER }, 0);
    const screen = feed({ event: 'progress', side: 'send', name: 'stdin.log', done: 4 * MiB, bytes: 0, peer: PEER }, 2000);
    expect(lineWith(screen, '↑ stdin.log ')).toBe('↑ stdin.log 4.0 MiB 2.0 MiB/s');
  });

  test('a name with control characters is shown escaped in its bar', () => {
    const screen = feed({ event: 'start', side: 'send', name: 'evil\x1b[2J\u202e.txt', bytes: 10, peer: PEER });
    expect(lineWith(screen, '↑ ')).toContain('↑ "evil\\x1b[2J\\u202e.txt"');
    expect(stderr.text).not.toMatch(/\x1b\[2J|\u202e/);
  });
});

describe('the receiver', () => {
  test("each sender's file has a bar that names the sender and climbs", () => {
    feed({ event: 'start', side: 'receive', name: 'in.bin', bytes: 1 * MiB, peer: SENDER });
    const seen: number[] = [];
    for (const done of [256 * KiB, 512 * KiB, 1 * MiB]) {
      seen.push(percent(lineWith(feed({ event: 'progress', side: 'receive', name: 'in.bin', done, bytes: 1 * MiB, peer: SENDER }), `↓ in.bin (${SENDER}) `)));
    }
    expect(seen).toEqual([25, 50, 100]);
    output.handle({ event: 'received', name: 'in.bin', path: '/tmp/in/in.bin', bytes: 1 * MiB, resumedFrom: 0, seconds: 1, peer: SENDER, hash: { algorithm: 'blake3', digest: 'cd' } });
    vi.advanceTimersByTime(250);
    expect(stderr.screen().filter((l) => l.startsWith('↓'))).toEqual([]);
    expect(stdout.text).toMatch(/^from 127\.0\.0\.1:40001:\nreceived in\.bin: 1\.0 MiB, 1\.00 s, .*, verified\n$/);
  });
});
