/**
 * What every offer must pass before any byte of it is kept, and what every
 * file must pass before it is named: the receiver's rules, as pure checks.
 * A failed check is a refusal or a verdict, a value; the session goes on.
 */
import { algorithmById, digestOf, type HashAlgorithm } from '../hash.js';
import { printable } from '../printable.js';
import { OfferFlag } from '../protocol/constants.js';
import { FerryError, toFerryError } from '../protocol/errors.js';
import type { OfferFrame } from '../protocol/messages.js';
import { validatePath } from '../protocol/names.js';
import { isTempName } from './partials.js';

/** What the checks need to know of the receiver. */
export interface Policy {
  /** Largest file accepted, in bytes; undefined: limited by free space only. */
  maxSize: number | undefined;
  /** Names beginning with '.' at the top of --dir are refused unless this is set. */
  allowHidden: boolean;
  /** --stdout: one file, no folders. */
  stdout: { taken: boolean } | undefined;
  /** Paths arriving over some connection right now (ERR_BUSY for a second one). */
  inFlight: ReadonlySet<string>;
}

/** An offer that passed: its path and hash. */
export interface Checked {
  /** The relative path, '/' between components. */
  name: string;
  parts: string[];
  algorithm: HashAlgorithm;
}

/** A refused offer: the reason, and the offered name as it may be printed. */
export interface Refused {
  refusal: FerryError;
  name: string;
}

/**
 * The checks every offer passes before any byte is kept: a safe relative
 * path (docs/protocol.md, section 7), nothing hidden at the top of --dir
 * (a code holder cannot plant `.ssh/authorized_keys` or `.bashrc` without
 * --allow-hidden), never one of ferry's temporary names, a known hash,
 * within --max-size, not arriving from elsewhere, and what --stdout allows.
 */
export function checkOffer(offer: OfferFrame, policy: Policy): Checked | Refused {
  const shown = printable(offer.name.toString('utf8'));
  const refuse = (refusal: FerryError): Refused => ({ refusal, name: shown });
  let parts: string[];
  try {
    parts = validatePath(offer.name);
  } catch (err) {
    return refuse(toFerryError(err));
  }
  const name = parts.join('/');
  if (parts.some(isTempName)) return refuse(new FerryError('ERR_BAD_NAME', "a name of the form of ferry's temporary files (.ferry-*.part)"));
  if (!policy.stdout && !policy.allowHidden && parts[0]!.startsWith('.')) {
    return refuse(new FerryError('ERR_BAD_NAME', "a hidden name at the top of the receiver's folder (the receiver can allow --allow-hidden)"));
  }
  const algorithm = algorithmById(offer.algorithm);
  if (!algorithm) return refuse(new FerryError('ERR_UNSUPPORTED_HASH', `unknown hash algorithm id ${offer.algorithm}`));
  if (policy.maxSize !== undefined && offer.size > policy.maxSize) {
    return refuse(new FerryError('ERR_TOO_LARGE', `${offer.size} bytes is over this receiver's limit of ${policy.maxSize}`));
  }
  if (policy.stdout && ((offer.flags & OfferFlag.Directory) !== 0 || policy.stdout.taken)) {
    return refuse(new FerryError('ERR_USAGE', 'this receiver writes one file to its standard output, and has it'));
  }
  if (policy.inFlight.has(name)) return refuse(busy());
  return { name, parts, algorithm };
}

export function isRefused(checked: Checked | Refused): checked is Refused {
  return 'refusal' in checked;
}

export function busy(): FerryError {
  return new FerryError('ERR_BUSY', 'a file of that name is arriving over another connection');
}

/**
 * Compares what arrived with END: null when the file is verified, else the
 * verdict's error. An END of the wrong length is a protocol error (thrown).
 * `expected`: the offered size, undefined for a stream.
 */
export function verify(
  algorithm: HashAlgorithm,
  offer: OfferFrame,
  arrived: { digests: Buffer; digest: Buffer; received: number; expected: number | undefined },
): FerryError | null {
  const h = algorithm.digestLength;
  const { digests, digest, received, expected } = arrived;
  if (digests.length !== 2 * h) {
    throw new FerryError('ERR_MALFORMED_PAYLOAD', `END carries ${digests.length} bytes, two ${algorithm.name} digests take ${2 * h}`);
  }
  if (expected !== undefined && received !== expected) return new FerryError('ERR_SIZE_MISMATCH', `${received} of ${expected} bytes arrived before END`);
  if (!digest.equals(digests.subarray(0, h))) return new FerryError('ERR_HASH_MISMATCH', `${algorithm.name} digest mismatch: the data was altered in transit`);
  if (!digestOf(algorithm, offer.payload).equals(digests.subarray(h))) {
    return new FerryError('ERR_HASH_MISMATCH', 'the offer (name, size, mode or mtime) was altered in transit');
  }
  return null;
}
