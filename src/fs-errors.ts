/**
 * One wording for file-system failures, on both sides: what ferry was doing,
 * then why in plain words where the errno has a common meaning, else the
 * errno itself.
 */
import { FerryError, type ErrorCode } from './protocol/errors.js';

const WHY: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'no such file or folder',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** Why `err` happened, in words: `no space left on device`, or the errno (`EXDEV`). */
export function errnoWords(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined) return err instanceof Error ? err.message : String(err);
  return WHY[code] ?? code;
}

/** `what: why` as a FerryError (ERR_IO unless told); a FerryError passes through unchanged. */
export function ioError(err: unknown, what: string, code: ErrorCode = 'ERR_IO'): FerryError {
  if (err instanceof FerryError) return err;
  return new FerryError(code, `${what}: ${errnoWords(err)}`, { cause: err });
}

/** The errno of a failed call, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
