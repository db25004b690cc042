/** The code's spelling check (src/secure/code.ts): which word is wrong, and which list word was meant. */
import { describe, expect, test } from 'vitest';
import { checkCode, editDistance, nearestWord, normalizeCode } from '../../src/secure/code.js';
import { WORDS } from '../../src/secure/words.js';

describe('editDistance', () => {
  test.each([
    ['cactus', 'cactus', 0],
    ['cactos', 'cactus', 1],
    ['cactsu', 'cactus', 1],
    ['catus', 'cactus', 1],
    ['cactuss', 'cactus', 1],
    ['', 'orbit', 5],
    ['orbit', 'tibro', 4],
  ])('%j to %j is %d', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });
});

describe('nearestWord', () => {
  test('a typo of one letter (changed, dropped, doubled, two swapped) is traced to its word', () => {
    expect(['cactos', 'catus', 'cactuss', 'cactsu'].map(nearestWord)).toEqual(['cactus', 'cactus', 'cactus', 'cactus']);
  });

  test('one letter changed in any list word: never a suggestion of another word', () => {
    let suggested = 0;
    for (const word of WORDS) {
      for (let at = 0; at < word.length; at++) {
        const next = String.fromCharCode(((word.charCodeAt(at) - 97 + 1) % 26) + 97);
        const typo = word.slice(0, at) + next + word.slice(at + 1);
        if (WORDS.includes(typo)) continue;
        const nearest = nearestWord(typo);
        expect([word, null], typo).toContain(nearest);
        if (nearest === word) suggested++;
      }
    }
    // Most such typos do get their word: the check is not satisfied by never suggesting anything.
    expect(suggested).toBeGreaterThan(1000);
  });

  test('nothing within two edits, or a tie: no suggestion', () => {
    expect(nearestWord('xyzzy')).toBeNull();
    expect(nearestWord('cane')).toBeNull(); // canoe, crane
  });
});

describe('checkCode and normalizeCode', () => {
  test('the same canonical spelling for a code', () => {
    for (const input of ['7-orbit-velvet-cactus', ' 7 ORBIT_velvet--Cactus\n']) {
      expect(checkCode(input)).toBe('7-orbit-velvet-cactus');
      expect(normalizeCode(input)).toBe('7-orbit-velvet-cactus');
    }
  });

  test('every problem in one message, each part named; ERR_USAGE', () => {
    expect(() => checkCode('07-orbit-velvte-cactos')).toThrow(
      expect.objectContaining({
        code: 'ERR_USAGE',
        message:
          "the code's number is written without a leading zero: 7, not 07; " +
          `the code's second word, "velvte", is not in ferry's word list; did you mean "velvet"?; ` +
          `the code's third word, "cactos", is not in ferry's word list; did you mean "cactus"?`,
      }),
    );
  });

  test('a typed control character is shown escaped, not sent to the terminal', () => {
    expect(() => checkCode('7-orbit-velvet-cac\x1b[2Jtus')).toThrow(/"cac\\x1b\[2jtus"/);
  });
});
