/** Characters that hide or disguise text are escaped too: the soft hyphen, annotation marks, tag characters. */
import { describe, expect, test } from 'vitest';
import { jsonLine } from '../../src/output/json.js';
import { printable, printableName, terminalSafe } from '../../src/printable.js';

const HIDDEN = ['\u00ad', '\ufff9', '\ufffb', '\u{e0041}', '\u{e007f}'];

describe('invisible characters', () => {
  test.each(HIDDEN)('U+%s is escaped by printable() and terminalSafe(), and makes a name quoted', (char) => {
    const text = `a${char}b`;
    expect(printable(text)).not.toContain(char);
    expect(terminalSafe(text)).not.toContain(char);
    expect(printableName(text).startsWith('"')).toBe(true);
  });

  test('a tag character is written as \\u{...}, whole', () => {
    expect(printable('x\u{e0041}')).toBe('x\\u{e0041}');
  });

  test('--json lines escape them and parse back to the same value', () => {
    const message = `hid${HIDDEN.join('')}den`;
    const line = jsonLine({ event: 'error', code: 'ERR_IO', message, exitCode: 1 });
    for (const char of HIDDEN) expect(line).not.toContain(char);
    expect(JSON.parse(line).message).toBe(message);
  });
});
