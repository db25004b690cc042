import { describe, expect, test } from 'vitest';
import { validateName } from '../src/protocol/names.js';

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('file names from the wire (docs/protocol.md, section 7)', () => {
  test.each([
    'report.pdf',
    'héllo wörld.txt',
    '日本語のファイル',
    'emoji 🚢.bin',
    ' leading and trailing spaces ',
    '.hidden',
    '...',
    'CON',
    'nul.txt',
    'trailing.dot.',
    'a'.repeat(255),
  ])('accepts %j', (name) => {
    expect(validateName(utf8(name))).toBe(name);
  });

  test.each([
    ['empty', Buffer.alloc(0), 'ERR_BAD_NAME'],
    ['.', utf8('.'), 'ERR_BAD_NAME'],
    ['..', utf8('..'), 'ERR_BAD_NAME'],
    ['../x', utf8('../x'), 'ERR_BAD_NAME'],
    ['/etc/passwd', utf8('/etc/passwd'), 'ERR_BAD_NAME'],
    ['a/b', utf8('a/b'), 'ERR_BAD_NAME'],
    ['a\\b', utf8('a\\b'), 'ERR_BAD_NAME'],
    ['..\\..\\x', utf8('..\\..\\x'), 'ERR_BAD_NAME'],
    ['NUL inside', utf8('a\0b'), 'ERR_BAD_NAME'],
    ['newline', utf8('a\nb'), 'ERR_BAD_NAME'],
    ['carriage return', utf8('a\rb'), 'ERR_BAD_NAME'],
    ['tab', utf8('a\tb'), 'ERR_BAD_NAME'],
    ['ESC (terminal escape)', utf8('\u001b[31mred'), 'ERR_BAD_NAME'],
    ['DEL', utf8('a\u007f'), 'ERR_BAD_NAME'],
    ['C1 CSI', utf8('a\u009b31m'), 'ERR_BAD_NAME'],
    ['right-to-left override', utf8('invoice\u202efdp.exe'), 'ERR_BAD_NAME'],
    ['bidi isolate', utf8('a\u2066b'), 'ERR_BAD_NAME'],
    ['invalid UTF-8', Buffer.from([0x61, 0xff, 0x62]), 'ERR_BAD_NAME'],
    ['overlong slash', Buffer.from([0xc0, 0xaf]), 'ERR_BAD_NAME'],
    ['encoded surrogate', Buffer.from([0xed, 0xa0, 0x80]), 'ERR_BAD_NAME'],
    ['truncated sequence', Buffer.from([0x61, 0xe2, 0x82]), 'ERR_BAD_NAME'],
    ['256 bytes', utf8('a'.repeat(256)), 'ERR_NAME_TOO_LONG'],
    ['10 KB', utf8('a'.repeat(10_000)), 'ERR_NAME_TOO_LONG'],
    ['255 characters but 510 bytes', utf8('é'.repeat(255)), 'ERR_NAME_TOO_LONG'],
  ])('refuses %s', (_label, bytes, code) => {
    expect(() => validateName(bytes)).toThrow(expect.objectContaining({ code }));
  });
});
