/** File name rules of docs/protocol.md, section 7. Pure: no file system access. */
import { MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH } from './constants.js';
import { FerryError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Control characters (C0, DEL, C1: ESC and CSI reach terminals), path
 * separators, and the bidirectional overrides and isolates that can make a
 * name print as another one.
 */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\\u202a-\u202e\u2066-\u2069]/u;

/**
 * Checks that raw name bytes from an OFFER are one safe path component and
 * returns the name. Throws ERR_BAD_NAME or ERR_NAME_TOO_LONG (a refusal: the
 * session goes on). It never repairs a name: a bad one is refused.
 */
export function validateName(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new FerryError('ERR_BAD_NAME', 'empty file name');
  if (bytes.length > MAX_NAME_BYTES) {
    throw new FerryError('ERR_NAME_TOO_LONG', `file name of ${bytes.length} bytes (at most ${MAX_NAME_BYTES})`);
  }
  let name: string;
  try {
    name = utf8.decode(bytes);
  } catch {
    throw new FerryError('ERR_BAD_NAME', 'file name is not valid UTF-8');
  }
  if (name === '.' || name === '..') throw new FerryError('ERR_BAD_NAME', `file name ${JSON.stringify(name)} is not a file`);
  const bad = FORBIDDEN.exec(name);
  if (bad) {
    const cp = bad[0].codePointAt(0)!;
    const what = bad[0] === '/' || bad[0] === '\\' ? 'a path separator' : `the character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new FerryError('ERR_BAD_NAME', `file name contains ${what}`);
  }
  return name;
}

/**
 * Checks the relative path of an OFFER: components joined by '/', each one
 * obeying validateName (so no '..', '.', empty component, '\\' or control
 * character), at most MAX_PATH_DEPTH deep and MAX_PATH_BYTES long. Returns
 * the components. An absolute path has an empty first component: refused.
 */
export function validatePath(bytes: Uint8Array): string[] {
  if (bytes.length > MAX_PATH_BYTES) {
    throw new FerryError('ERR_NAME_TOO_LONG', `path of ${bytes.length} bytes (at most ${MAX_PATH_BYTES})`);
  }
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x2f) continue;
    if (i === start) throw new FerryError('ERR_BAD_NAME', i === 0 ? 'absolute or empty path' : 'empty path component');
    parts.push(validateName(bytes.subarray(start, i)));
    start = i + 1;
  }
  if (parts.length > MAX_PATH_DEPTH) throw new FerryError('ERR_BAD_NAME', `path ${parts.length} levels deep (at most ${MAX_PATH_DEPTH})`);
  return parts;
}

