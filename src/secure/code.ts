/**
 * The code two people share to pair a sender with a receiver:
 * `<n>-<w1>-<w2>-<w3>`, e.g. `7-orbit-velvet-cactus`. It is the SPAKE2
 * password (spake2.ts); its strength is the number of codes, not any secret
 * format. Pure functions: no sockets, no timers.
 */
import { randomInt } from 'node:crypto';
import { printable } from '../printable.js';
import { FerryError } from '../protocol/errors.js';
import { WORDS } from './words.js';

/** A fresh code's number is 1..999: short to say, and never "0" or "007" (one spelling per code). */
export const CODE_MAX_NUMBER = 999;
/**
 * A code may begin with a number up to 9999: a relay hands out nameplates
 * beyond 999 when that many rooms wait at once (relay/wire.ts). Through a
 * relay the number is public, so its range adds nothing to a code's strength.
 */
export const CODE_LARGEST_NUMBER = 9999;
/** Words after the number. */
export const CODE_WORDS = 3;

/** log2 of the number of codes: log2(999) + 3 × log2(256) ≈ 33.96 bits. */
export const CODE_ENTROPY_BITS = Math.log2(CODE_MAX_NUMBER) + CODE_WORDS * Math.log2(WORDS.length);

const WORD_SET: ReadonlySet<string> = new Set(WORDS);
const NUMBER = /^[1-9][0-9]{0,3}$/;
/** Runs of spaces, underscores and dashes all read as one separator. */
const SEPARATORS = /[\s_-]+/g;

/**
 * A fresh code: the number and each word drawn uniformly and independently
 * (node:crypto randomInt). Through a relay the number is the room's
 * (`number`, 1..CODE_LARGEST_NUMBER, public) and only the words are drawn.
 */
export function generateCode(number: number = randomInt(1, CODE_MAX_NUMBER + 1)): string {
  if (!Number.isInteger(number) || number < 1 || number > CODE_LARGEST_NUMBER) throw new RangeError(`a code's number is 1 to ${CODE_LARGEST_NUMBER}, not ${number}`);
  const parts = [String(number)];
  for (let i = 0; i < CODE_WORDS; i++) parts.push(WORDS[randomInt(WORDS.length)]!);
  return parts.join('-');
}

/** The number a code begins with: through a relay, its room (the code must be normalized). */
export function codeNumber(code: string): number {
  return Number(normalizeCode(code).split('-')[0]);
}

/**
 * The canonical spelling of a code as a person typed it: trimmed, lowercased,
 * separators collapsed to single dashes ("7 Orbit_velvet--cactus" becomes
 * "7-orbit-velvet-cactus"). Throws ERR_USAGE unless it is a number 1..9999
 * without leading zeros followed by three list words.
 */
export function normalizeCode(input: string): string {
  const code = canonical(input);
  if (codeProblem(code) !== null) throw new FerryError('ERR_USAGE', CODE_SHAPE);
  return code;
}

/**
 * normalizeCode() for a code a person gave on the command line or at the
 * prompt: the same canonical spelling, but a refusal says what is wrong (the
 * word not in the list, and the list word nearest to it; the number out of
 * range) so a one-letter slip can be fixed without asking the receiver again.
 */
export function checkCode(input: string): string {
  const code = canonical(input);
  const problem = codeProblem(code);
  if (problem !== null) throw new FerryError('ERR_USAGE', problem);
  return code;
}

const CODE_SHAPE = 'code must look like 7-orbit-velvet-cactus';
const ORDINALS = ['first', 'second', 'third'];

function canonical(input: string): string {
  return input.trim().toLowerCase().replace(SEPARATORS, '-');
}

/** What is wrong with a canonical-spelled code, in words; null when it is a code. */
function codeProblem(code: string): string | null {
  const parts = code.split('-');
  if (parts.length !== 1 + CODE_WORDS) {
    return `${CODE_SHAPE}: a number and three words, not ${parts.length} part${parts.length === 1 ? '' : 's'}`;
  }
  const problems: string[] = [];
  const number = numberProblem(parts[0]!);
  if (number !== null) problems.push(number);
  parts.slice(1).forEach((word, at) => {
    if (!WORD_SET.has(word)) problems.push(wordProblem(word, ORDINALS[at]!));
  });
  return problems.length === 0 ? null : problems.join('; ');
}

function numberProblem(part: string): string | null {
  if (NUMBER.test(part)) return null;
  const shown = printable(part);
  if (!/^[0-9]+$/.test(part)) return `the code must begin with its number (1 to ${CODE_LARGEST_NUMBER}), not "${shown}"`;
  const value = Number(part);
  // One spelling per code: "07" is not "7", or two spellings would be two passwords.
  if (part.startsWith('0') && value >= 1 && value <= CODE_LARGEST_NUMBER) return `the code's number is written without a leading zero: ${value}, not ${part}`;
  return `the code's number is 1 to ${CODE_LARGEST_NUMBER}, not ${shown}`;
}

function wordProblem(word: string, ordinal: string): string {
  const nearest = nearestWord(word);
  const hint = nearest === null ? '' : `; did you mean "${nearest}"?`;
  return `the code's ${ordinal} word, "${printable(word)}", is not in ferry's word list${hint}`;
}

/** Farther than this and a suggestion is a guess: two slips (a wrong, a missing or two swapped letters) at most. */
const MAX_SUGGESTION_DISTANCE = 2;

/** The one list word nearest to `word`, or null when none is near or two are equally near. */
export function nearestWord(word: string): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  let tied = false;
  for (const candidate of WORDS) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance, tied] = [candidate, d, false];
    else if (d === bestDistance) tied = true;
  }
  return bestDistance <= MAX_SUGGESTION_DISTANCE && !tied ? best : null;
}

/**
 * Levenshtein distance with adjacent transpositions counted as one edit
 * (optimal string alignment): "cactsu" is one slip from "cactus", as a
 * person typing sees it, not two.
 */
export function editDistance(a: string, b: string): number {
  // Rows i-2, i-1 and i of the usual table.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    [before, previous] = [previous, row];
  }
  return previous[b.length]!;
}
