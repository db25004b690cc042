/**
 * The human lines and the --json lines, as written: what goes to stdout and
 * stderr, the listening hint, and the last guard against raw control and
 * bidi characters from any source.
 */
import { describe, expect, test } from 'vitest';
import type { FerryEvent } from '../../src/events.js';
import { Output } from '../../src/output/index.js';
import { peerText } from '../../src/printable.js';
import { FakeTty } from '../support/terminal.js';

/** A raw character that acts on a terminal or reorders text; \n is allowed only as the line end. */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
const NASTY = 'a\x1b[2J\x07\r\x9b31m\u202egnp.exe\u2066\u200b\x7fz';

function human(options: { quiet?: boolean } = {}): { output: Output; stdout: FakeTty; stderr: FakeTty } {
  const stdout = new FakeTty({ tty: false });
  const stderr = new FakeTty({ tty: false });
  return { output: new Output({ json: false, quiet: options.quiet ?? false, bars: false, out: stdout, err: stderr }), stdout, stderr };
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
  test('one line per file on stdout, the summary after several; --quiet prints none', () => {
    const events: FerryEvent[] = [
      { event: 'plan', files: 2, directories: 0, bytes: 3072 },
      { event: 'sent', name: 'a', bytes: 1024, transferred: 1024, resumedFrom: 0, seconds: 0.5, hash: { algorithm: 'blake3', digest: 'aa' } },
      { event: 'sent', name: 'b', bytes: 2048, transferred: 1024, resumedFrom: 1024, seconds: 12, hash: { algorithm: 'sha256', digest: 'bb' } },
      { event: 'summary', side: 'send', files: 2, directories: 0, bytes: 3072, failures: 0, exitCode: 0, seconds: 150 },
    ];
    const loud = human();
    events.forEach(loud.output.handle);
    expect(lines(loud.stdout)).toEqual([
      'sent a: 1.0 KiB in 0.50 s (2.0 KiB/s), blake3 aa verified by the receiver',
      'sent b: 2.0 KiB in 12 s (85 B/s, resumed at 1.0 KiB), sha256 bb verified by the receiver',
      'sent 2 files, 3.0 KiB in 2 min 30 s (20 B/s), all verified',
    ]);
    expect(loud.stderr.text).toBe('');
    const quiet = human({ quiet: true });
    events.forEach(quiet.output.handle);
    expect(quiet.stdout.text).toBe('');
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
    expect(lines(stdout)).toHaveLength(1);
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
