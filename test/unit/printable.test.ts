/** src/printable.ts: how text from a peer, and every line ferry prints, is made safe to show. */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { peerText, printable, printableName, terminalSafe } from '../../src/printable.js';

// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
/** Strings rich in the characters that matter here. */
const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\x00', '\x1b', '\n', '\r', '\t', '\x7f', '\x85', '\x9b', '\\', '"', '\u061c', '\u200e', '\u2028', '\u202e', '\u2066', '\ufeff', '\u{1f600}'),
    fc.string({ minLength: 1, maxLength: 1 }),
  ),
  maxLength: 40,
});

describe('printable', () => {
  test('escapes controls, bidi and invisible characters, and the backslash, visibly', () => {
    expect(printable('a\x1b[2J\n\r\t\x07\x7f\x9b\u202e\u200b\ufeff\\b')).toBe('a\\x1b[2J\\n\\r\\t\\x07\\x7f\\x9b\\u202e\\u200b\\ufeff\\\\b');
    expect(printable('naïve café 日本語 😀')).toBe('naïve café 日本語 😀');
  });

  test('cuts long text to 300 characters and says so', () => {
    expect(printable('x'.repeat(1000))).toBe(`${'x'.repeat(300)}…`);
  });

  test('never leaves a raw unsafe character, for any input', () => {
    fc.assert(fc.property(hostile, (s) => !RAW.test(printable(s))));
  });
});

describe('peerText and printableName', () => {
  test('peer text is always quoted, its quotes escaped', () => {
    expect(peerText('disk "full"')).toBe('"disk \\"full\\""');
    expect(peerText('')).toBe('""');
  });

  test('a plain name is shown as it is; any unsafe character makes it escaped and quoted', () => {
    expect(printableName('dir/naïve café.txt')).toBe('dir/naïve café.txt');
    expect(printableName('evil\u202etxt.exe')).toBe('"evil\\u202etxt.exe"');
    expect(printableName('a\\b')).toBe('"a\\\\b"');
    // Called twice in a row (the pattern is global): same answer.
    expect(printableName('x\ny')).toBe(printableName('x\ny'));
  });
});

describe('terminalSafe', () => {
  test('escapes what printable() does, except the backslash, and cuts nothing', () => {
    expect(terminalSafe('a\x1b[2J\n\x9b\u202e\\x1b')).toBe('a\\x1b[2J\\n\\x9b\\u202e\\x1b');
    expect(terminalSafe('y'.repeat(1000))).toHaveLength(1000);
  });

  test('leaves no raw unsafe character, is idempotent, and leaves printable() output unchanged', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const once = terminalSafe(s);
        return !RAW.test(once) && terminalSafe(once) === once && terminalSafe(printable(s)) === printable(s) && terminalSafe(peerText(s)) === peerText(s);
      }),
    );
  });
});
