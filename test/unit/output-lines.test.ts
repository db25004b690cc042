/**
 * The human lines and the --json lines, as written: what goes to stdout and
 * stderr, the listening hint, and the last guard against raw control and
 * bidi characters from any source.
 */
import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { FerryEvent } from '../../src/events.js';
import { Output } from '../../src/output/index.js';
import { summaryLine, unchangedLine } from '../../src/output/lines.js';
import { peerText } from '../../src/printable.js';
import { FakeTty } from '../support/terminal.js';

/** A raw character that acts on a terminal or reorders text; \n is allowed only as the line end. */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
const NASTY = 'a\x1b[2J\x07\r\x9b31m\u202egnp.exe\u2066\u200b\x7fz';
const DIGEST = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';

function human(options: { quiet?: boolean; verbose?: boolean } = {}): { output: Output; stdout: FakeTty; stderr: FakeTty } {
  const stdout = new FakeTty({ tty: false });
  const stderr = new FakeTty({ tty: false });
  const output = new Output({ json: false, quiet: options.quiet ?? false, verbose: options.verbose ?? false, bars: false, out: stdout, err: stderr });
  return { output, stdout, stderr };
}

function lines(stream: FakeTty): string[] {
  expect(stream.text === '' || stream.text.endsWith('\n')).toBe(true);
  return stream.text.split('\n').slice(0, -1);
}

describe('the listening hint', () => {
  test('gives the code through FERRY_CODE, never as --code in argv', () => {
    const { output, stdout } = human({ quiet: true });
    output.handle({ event: 'listening', host: '127.0.0.1', port: 7878, code: '7-orbit-velvet-cactus' });
    expect(lines(stdout)).toEqual([
      'ferry: listening on 127.0.0.1 port 7878',
      'ferry: code 7-orbit-velvet-cactus',
      'ferry: on the other host run: FERRY_CODE=7-orbit-velvet-cactus ferry send FILE --to 127.0.0.1:7878',
    ]);
  });

  test('announcing on the LAN: one more line, saying --to may be left out there', () => {
    const { output, stdout } = human();
    output.handle({ event: 'listening', host: '::', port: 7878, code: '7-orbit-velvet-cactus', announcing: true });
    expect(lines(stdout).at(-1)).toBe('ferry: announced on the LAN: on the same network, --to may be left out');
  });

  test('a sender that found its receiver on the LAN says where', () => {
    const { output, stdout, stderr } = human();
    output.handle({ event: 'found', host: '10.0.0.7', port: 7878, candidates: 2 });
    expect(lines(stdout)).toEqual(['found the receiver on the LAN at 10.0.0.7 port 7878']);
    expect(stderr.text).toBe('');
  });

  test('--insecure: the warning and the --insecure command; IPv6 in brackets', () => {
    const { output, stdout } = human();
    output.handle({ event: 'listening', host: '::1', port: 9, insecure: true });
    expect(lines(stdout)).toEqual([
      'ferry: listening on [::1] port 9',
      'ferry: --insecure: no code, no encryption; anyone who can reach this port can send files',
      'ferry: on the other host run: ferry send FILE --to [::1]:9 --insecure',
    ]);
  });
});

describe('summary lines', () => {
  test('one short line per file on stdout (no digest), the summary after several; --quiet prints none', () => {
    const events: FerryEvent[] = [
      { event: 'plan', files: 2, directories: 0, bytes: 3072 },
      { event: 'sent', name: 'a', bytes: 1024, transferred: 1024, resumedFrom: 0, seconds: 0.5, hash: { algorithm: 'blake3', digest: 'aa' } },
      { event: 'sent', name: 'b', bytes: 2048, transferred: 1024, resumedFrom: 1024, seconds: 12, hash: { algorithm: 'sha256', digest: 'bb' } },
      { event: 'summary', side: 'send', files: 2, directories: 0, bytes: 3072, failures: 0, exitCode: 0, seconds: 150 },
    ];
    const loud = human();
    events.forEach(loud.output.handle);
    expect(lines(loud.stdout)).toEqual([
      'sent a: 1.0 KiB, 0.50 s, 2.0 KiB/s, verified by the receiver',
      'sent b: 2.0 KiB, 12 s, 85 B/s, resumed at 1.0 KiB, verified by the receiver',
      'sent 2 files, 3.0 KiB in 2 min 30 s (20 B/s), all verified',
    ]);
    expect(loud.stderr.text).toBe('');
    const verbose = human({ verbose: true });
    events.forEach(verbose.output.handle);
    expect(lines(verbose.stdout)).toEqual([
      'sent a: 1.0 KiB in 0.50 s (2.0 KiB/s), blake3 aa verified by the receiver',
      'sent b: 2.0 KiB in 12 s (85 B/s, resumed at 1.0 KiB), sha256 bb verified by the receiver',
      'sent 2 files, 3.0 KiB in 2 min 30 s (20 B/s), all verified',
    ]);
    const quiet = human({ quiet: true, verbose: true });
    events.forEach(quiet.output.handle);
    expect(quiet.stdout.text).toBe('');
  });

  test('the receiver: name, size, time and rate under its sender; -v puts the sender, the digest and where it was saved on the line', () => {
    const event: FerryEvent = { event: 'received', name: 'docs/a.pdf', path: 'in/docs/a.pdf', bytes: 3 * 1024 * 1024, resumedFrom: 1024 * 1024, seconds: 2, peer: '10.0.0.2:40001', hash: { algorithm: 'blake3', digest: DIGEST } };
    const folder: FerryEvent = { event: 'received', name: 'docs', path: 'in/docs', bytes: 0, directory: true, resumedFrom: 0, seconds: 0, peer: '10.0.0.2:40001' };
    const short = human();
    [folder, event].forEach(short.output.handle);
    expect(lines(short.stdout)).toEqual(['from 10.0.0.2:40001:', 'received docs/a.pdf: 3.0 MiB, 2.00 s, 1.0 MiB/s, resumed at 1.0 MiB, verified']);
    const verbose = human({ verbose: true });
    [folder, event].forEach(verbose.output.handle);
    expect(lines(verbose.stdout)).toEqual([
      `received docs/a.pdf from 10.0.0.2:40001: 3.0 MiB in 2.00 s (1.0 MiB/s, resumed at 1.0 MiB), blake3 ${DIGEST} verified, saved as in/docs/a.pdf`,
    ]);
  });

  test('an ordinary file\'s line fits an 80-column terminal without wrapping, on either side', () => {
    const stdout = new FakeTty({ columns: 80 });
    const output = new Output({ json: false, quiet: false, bars: false, out: stdout, err: new FakeTty({ tty: false }) });
    const hash = { algorithm: 'sha256', digest: DIGEST };
    output.handle({ event: 'received', name: 'photos/IMG_2041.jpg', path: '/home/ann/in/photos/IMG_2041.jpg', bytes: 4_404_019, resumedFrom: 0, seconds: 0.31, peer: '192.168.1.23:51234', hash });
    output.handle({ event: 'sent', name: 'photos/IMG_2041.jpg', bytes: 4_404_019, transferred: 4_404_019, resumedFrom: 0, seconds: 0.31, hash });
    // Each line took one row: none wrapped.
    expect(stdout.screen()).toEqual([
      'from 192.168.1.23:51234:',
      'received photos/IMG_2041.jpg: 4.2 MiB, 0.31 s, 13.5 MiB/s, verified',
      'sent photos/IMG_2041.jpg: 4.2 MiB, 0.31 s, 13.5 MiB/s, verified by the receiver',
    ]);
  });

  test('errors, skips and retries go to stderr as one ferry: line each', () => {
    const { output, stdout, stderr } = human({ quiet: true });
    output.handle({ event: 'skipped', name: 'link', reason: 'symlink' });
    output.handle({ event: 'retry', attempt: 1, of: 5, delaySeconds: 1, code: 'ERR_CONNECTION_LOST', message: 'connection lost' });
    output.handle({ event: 'error', code: 'ERR_EXISTS', message: 'a.txt: refused', exitCode: 4, name: 'a.txt' });
    expect(lines(stderr)).toEqual([
      'ferry: skipped link: a symlink (ferry does not follow or recreate links)',
      'ferry: connection lost; retry 1 of 5 in 1.00 s, resuming',
      'ferry: a.txt: refused',
    ]);
    expect(stdout.text).toBe('');
  });
});

describe('the last guard: no raw control or bidi character reaches a terminal', () => {
  test('from an error message, a saved path or a name, whatever escaped them before', () => {
    const { output, stdout, stderr } = human();
    output.handle({ event: 'error', code: 'ERR_IO', message: `cannot write ${NASTY}`, exitCode: 1 });
    output.handle({ event: 'retry', attempt: 1, of: 2, delaySeconds: 0, code: 'ERR_TIMEOUT', message: NASTY });
    output.handle({ event: 'received', name: NASTY, path: `/in/${NASTY}`, bytes: 1, resumedFrom: 0, seconds: 0, peer: 'p:1', hash: { algorithm: 'blake3', digest: '00' } });
    for (const line of [...lines(stdout), ...lines(stderr)]) expect(line).not.toMatch(RAW);
    expect(lines(stderr)[0]).toBe('ferry: cannot write a\\x1b[2J\\x07\\r\\x9b31m\\u202egnp.exe\\u2066\\u200b\\x7fz');
    expect(lines(stdout)).toEqual(['from p:1:', expect.stringMatching(/^received "a\\x1b\[2J.*z": 1 B, /)]);
  });

  test('-v: the long line, with the path that holds the name quoted and escaped as the name is', () => {
    const { output, stdout } = human({ verbose: true });
    output.handle({ event: 'received', name: NASTY, path: `/in/${NASTY}`, bytes: 1, resumedFrom: 0, seconds: 0, peer: 'p:1', hash: { algorithm: 'blake3', digest: '00' } });
    output.handle({ event: 'sent', name: NASTY, bytes: 1, transferred: 1, resumedFrom: 0, seconds: 0, hash: { algorithm: 'blake3', digest: '00' } });
    const [received, sent] = lines(stdout);
    expect(received).toMatch(/^received "a\\x1b.*z" from p:1: .* blake3 00 verified, saved as "\/in\/a\\x1b\[2J.*z"$/);
    expect(sent).toMatch(/^sent "a\\x1b.*z": .* blake3 00 verified by the receiver$/);
    for (const line of lines(stdout)) expect(line).not.toMatch(RAW);
  });

  test('text printable() already escaped passes unchanged: backslashes are not doubled', () => {
    const { output, stderr } = human();
    const message = `peer aborted, saying ${peerText(NASTY)} C:\\path`;
    output.handle({ event: 'error', code: 'ERR_IO', message, exitCode: 1 });
    expect(lines(stderr)).toEqual([`ferry: ${message}`]);
  });
});

describe('--json', () => {
  test('every event one line; strings with C0, C1, DEL and bidi characters parse back unchanged, the raw line is safe', () => {
    const stdout = new FakeTty({ tty: false });
    const stderr = new FakeTty({ tty: false });
    const output = new Output({ json: true, quiet: false, bars: true, out: stdout, err: stderr });
    const events: FerryEvent[] = [
      { event: 'start', side: 'receive', name: NASTY, bytes: 3, peer: '[::1]:5' },
      { event: 'received', name: NASTY, path: `/in/${NASTY}\u2028\u2029\ufeff`, bytes: 3, resumedFrom: 0, seconds: 0.1, peer: '[::1]:5', hash: { algorithm: 'blake3', digest: 'ff' } },
      { event: 'error', code: 'ERR_IO', message: NASTY, exitCode: 1, name: NASTY },
    ];
    events.forEach(output.handle);
    output.stop();
    const written = lines(stdout);
    expect(written).toHaveLength(events.length);
    for (const [i, line] of written.entries()) {
      expect(line).not.toMatch(RAW);
      expect(JSON.parse(line)).toEqual(events[i]);
    }
    expect(written[0]).toContain('\\u009b31m\\u202egnp.exe\\u2066\\u200b\\u007fz');
    // The error is also one human line on stderr, guarded the same way; no bar is drawn with --json.
    expect(lines(stderr)).toHaveLength(1);
    expect(lines(stderr)[0]).not.toMatch(RAW);
  });
});

describe('--json writes', () => {
  /** Counts the writes that reach the file descriptor's side of the stream. */
  class CountingOut extends Writable {
    writes = 0;
    text = '';
    override _writev(chunks: Array<{ chunk: Buffer }>, callback: () => void): void {
      this.writes++;
      for (const { chunk } of chunks) this.text += chunk.toString('utf8');
      callback();
    }
    override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
      this.writes++;
      this.text += chunk.toString('utf8');
      callback();
    }
  }

  test("the lines of one turn of the event loop go out in one write, by the next turn, in order", async () => {
    const out = new CountingOut();
    const output = new Output({ json: true, quiet: false, bars: false, out, err: new FakeTty({ tty: false }) });
    for (let i = 0; i < 100; i++) output.handle({ event: 'received', name: `f${i}`, path: `/in/f${i}`, bytes: 1, resumedFrom: 0, seconds: 0, peer: 'p', hash: { algorithm: 'blake3', digest: 'ff' } });
    expect(out.writes).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.writes).toBe(1);
    const names = out.text.trim().split('\n').map((line) => (JSON.parse(line) as { name: string }).name);
    expect(names).toEqual(Array.from({ length: 100 }, (_, i) => `f${i}`));
    output.handle({ event: 'listening', host: 'h', port: 1 });
    output.stop();
    expect(out.writes).toBe(2);
  });
});

describe('unchanged files', () => {
  const hash = { algorithm: 'blake3', digest: 'ab'.repeat(32) };
  test('the sender says the receiver has the same content, and -v adds the digest', () => {
    const e = { event: 'unchanged' as const, side: 'send' as const, name: 'tree/a.txt', bytes: 4096, hash };
    expect(unchangedLine(e)).toBe('unchanged tree/a.txt: 4.0 KiB, the receiver has the same content, not sent');
    expect(unchangedLine(e, true)).toContain(`blake3 ${'ab'.repeat(32)}`);
  });
  test('a receiver names the folder a whole-folder probe settled', () => {
    const e = { event: 'unchanged' as const, side: 'receive' as const, name: 'tree', bytes: 0, hash, peer: '10.0.0.2:4000', directory: true as const };
    expect(unchangedLine(e)).toBe('unchanged folder tree from 10.0.0.2:4000: every file already here, the same');
  });
  test('the summary counts them apart from what was sent', () => {
    const line = summaryLine({ event: 'summary', side: 'send', files: 1, directories: 0, bytes: 10, unchanged: 19, failures: 0, exitCode: 0, seconds: 1 });
    expect(line).toMatch(/^sent 1 file, 10 B in .*, 19 unchanged, all verified$/);
  });
});
