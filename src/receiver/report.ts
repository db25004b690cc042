/** The receiver's events about files: one wording for refusals, failures and saved files. */
import { exitCodeOf } from '../exit-codes.js';
import type { EventListener } from '../events.js';
import type { HashAlgorithm } from '../hash.js';
import { printableName } from '../printable.js';
import type { FerryError } from '../protocol/errors.js';

/** Who is reporting: where events go, and which sender they concern. */
export interface Reporter {
  emit: EventListener;
  peer: string;
}

/** An offer the receiver said no to (before keeping any byte). `name`: as offered, printable. */
export function refused(r: Reporter, err: FerryError, name: string): void {
  r.emit({ event: 'error', code: err.code, message: `refused ${printableName(name)} from ${r.peer}: ${err.message}`, exitCode: exitCodeOf(err.code), name, peer: r.peer });
}

/** A file that arrived but was not saved (not verified, or the disk failed). */
export function failed(r: Reporter, err: FerryError, name: string): void {
  r.emit({ event: 'error', code: err.code, message: `${printableName(name)} from ${r.peer}: ${err.message}`, exitCode: exitCodeOf(err.code), name, peer: r.peer });
}

/** A refusal or a failure, by its exit code. */
export function notSaved(r: Reporter, err: FerryError, name: string): void {
  if (exitCodeOf(err.code) === 4) refused(r, err, name);
  else failed(r, err, name);
}

export function received(
  r: Reporter,
  f: { name: string; path: string; bytes: number; algorithm: HashAlgorithm; digest: Buffer; seconds: number; resumedFrom: number },
): void {
  r.emit({
    event: 'received',
    name: f.name,
    path: f.path,
    bytes: f.bytes,
    hash: { algorithm: f.algorithm.name, digest: f.digest.toString('hex') },
    seconds: f.seconds,
    resumedFrom: f.resumedFrom,
    peer: r.peer,
  });
}

export function receivedFolder(r: Reporter, f: { name: string; path: string; seconds: number }): void {
  r.emit({ event: 'received', name: f.name, path: f.path, bytes: 0, directory: true, resumedFrom: 0, seconds: f.seconds, peer: r.peer });
}

/** A probe answered "I hold it": the file here passed the quick check, and its digest goes back as the proof. */
export function unchanged(r: Reporter, f: { name: string; path: string; bytes: number; algorithm: HashAlgorithm; digest: Buffer; directory?: true }): void {
  const hash = { algorithm: f.algorithm.name, digest: f.digest.toString('hex') };
  r.emit({ event: 'unchanged', side: 'receive', name: f.name, path: f.path, bytes: f.bytes, hash, peer: r.peer, ...(f.directory ? { directory: true as const } : {}) });
}
