/**
 * The one way a string that came from a peer (a name, a REFUSE, VERDICT or
 * ABORT message) reaches a terminal or a log: characters that act on a
 * terminal or disguise text are escaped visibly, so a peer can neither move
 * the cursor, ring the bell, start a new line, nor make its text read as
 * something else. docs/security.md, "Text from a peer".
 */

/**
 * C0 controls and DEL, the C1 set (CSI, OSC...), the bidirectional marks,
 * embeddings, overrides and isolates, zero-width characters, the line and
 * paragraph separators, the soft hyphen, the interlinear annotation marks,
 * the tag characters (which hide text), and the byte-order mark. A backslash is escaped
 * too, so that every escape reads one way only.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\\\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

/** Longest peer text shown, in characters: a message is at most 1024 bytes on the wire anyway. */
const MAX_SHOWN = 300;

function escape(char: string): string {
  if (char === '\\') return '\\\\';
  if (char === '\n') return '\\n';
  if (char === '\r') return '\\r';
  if (char === '\t') return '\\t';
  const cp = char.codePointAt(0)!;
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/** `text` with every unsafe character escaped (`\x1b`, `\u202e`, `\n`), cut to MAX_SHOWN characters. */
export function printable(text: string): string {
  const cut = text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
  return cut.replace(UNSAFE, escape);
}

/**
 * A peer's message as it is shown: escaped and in double quotes, so it can
 * never pass for ferry's own words (nor, on its own line, for ferry's
 * success lines, which never start with a quote).
 */
export function peerText(message: string): string {
  return `"${printable(message).replace(/"/g, '\\"')}"`;
}

/** The same characters as UNSAFE, less the backslash. */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

/**
 * The last guard before a line reaches a terminal, whatever its sources: a
 * control or bidi character left in it is escaped as printable() would. A
 * backslash is left alone, so a line that holds printable() text comes out
 * unchanged (no `\\x1b` from an already escaped `\x1b`), and the guard can
 * be applied twice. Nothing is cut.
 */
export function terminalSafe(line: string): string {
  return line.replace(CONTROLS, escape);
}

/** A relative path for printing: as it is when it is plain, otherwise escaped and quoted. */
export function printableName(name: string): string {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(name) ? peerText(name) : name;
}
