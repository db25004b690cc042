/**
 * --json: one event per line. The line is JSON.stringify's, with one change
 * so that it is safe to see raw on a terminal (`ferry send --json` run by
 * hand): DEL, the C1 controls and the bidi and invisible characters inside
 * strings are written as \uXXXX escapes. JSON.stringify already escapes C0.
 * Parsed, the values are the same.
 */
import type { FerryEvent } from '../events.js';

// Outside strings JSON is ASCII punctuation, digits and literals: every match is inside a string.
// Tag characters (U+E0000-E007F) are astral: matched as their surrogate pairs, each half escaped.
// eslint-disable-next-line no-control-regex
const RAW_UNSAFE = /[\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]|\udb40[\udc00-\udc7f]/g;

function escapeUnit(unit: string): string {
  return `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `value` as one line of JSON (no newline), terminal-safe. */
export function jsonLine(value: FerryEvent | Record<string, unknown>): string {
  return JSON.stringify(value).replace(RAW_UNSAFE, (match) => match.split('').map(escapeUnit).join(''));
}
