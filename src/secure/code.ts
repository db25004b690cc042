/**
 * The code two people share to pair a sender with a receiver:
 * `<n>-<w1>-<w2>-<w3>`, e.g. `7-orbit-velvet-cactus`. It is the SPAKE2
 * password (spake2.ts); its strength is the number of codes, not any secret
 * format. Pure functions: no sockets, no timers.
 */
import { randomInt } from 'node:crypto';
import { FerryError } from '../protocol/errors.js';
import { WORDS } from './words.js';

/** The number is 1..999: short to say, and never "0" or "007" (one spelling per code). */
export const CODE_MAX_NUMBER = 999;
/** Words after the number. */
export const CODE_WORDS = 3;

/** log2 of the number of codes: log2(999) + 3 × log2(256) ≈ 33.96 bits. */
export const CODE_ENTROPY_BITS = Math.log2(CODE_MAX_NUMBER) + CODE_WORDS * Math.log2(WORDS.length);

const WORD_SET: ReadonlySet<string> = new Set(WORDS);
const NUMBER = /^[1-9][0-9]{0,2}$/;
/** Runs of spaces, underscores and dashes all read as one separator. */
const SEPARATORS = /[\s_-]+/g;

/** A fresh code: the number and each word drawn uniformly and independently (node:crypto randomInt). */
export function generateCode(): string {
  const parts = [String(randomInt(1, CODE_MAX_NUMBER + 1))];
  for (let i = 0; i < CODE_WORDS; i++) parts.push(WORDS[randomInt(WORDS.length)]!);
  return parts.join('-');
}

/**
 * The canonical spelling of a code as a person typed it: trimmed, lowercased,
 * separators collapsed to single dashes ("7 Orbit_velvet--cactus" becomes
 * "7-orbit-velvet-cactus"). Throws ERR_USAGE unless it is a number 1..999
 * without leading zeros followed by three list words.
 */
export function normalizeCode(input: string): string {
  const code = input.trim().toLowerCase().replace(SEPARATORS, '-');
  const parts = code.split('-');
  const valid =
    parts.length === 1 + CODE_WORDS && NUMBER.test(parts[0]!) && parts.slice(1).every((word) => WORD_SET.has(word));
  if (!valid) throw new FerryError('ERR_USAGE', 'code must look like 7-orbit-velvet-cactus');
  return code;
}
