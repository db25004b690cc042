/**
 * Re-sending, on the receiving side (docs/protocol.md, section 5.3):
 * answering a PROBE ("do you already have this file?"), and whether an
 * offer may replace the file of its name (REPLACE, the sender's --update).
 *
 * A probe is answered VERDICT OK with the digest of the file held at that
 * path when it is a regular file of the offered size and mtime (the quick
 * check; the digest is the proof, computed on this side's disk), and
 * ERR_NOT_HELD otherwise; a probe of a folder, with the digest of all the
 * files held below it (held-folder.ts). It writes nothing and makes no folder. Probes are
 * queued with the eager verdicts, so they are answered in offer order.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { ReceiverConnection } from '../connection.js';
import { digestOfFile } from '../file-digest.js';
import { OfferFlag } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';
import type { OfferFrame } from '../protocol/messages.js';
import { isRefused, type Checked } from './checks.js';
import { heldFolderDigest } from './held-folder.js';
import type { Replies } from './eager.js';
import * as report from './report.js';
import type { SessionContext } from './session.js';

const NOT_HELD = new FerryError('ERR_NOT_HELD', 'not held here: send it');

/** Queues the answer to a probe. The probe's frames are consumed already (it has no DATA or END). */
export function answerProbe(conn: ReceiverConnection, offer: OfferFrame, ctx: SessionContext, replies: Replies): void {
  const checked = ctx.check(offer);
  const r = { emit: ctx.emit, peer: conn.peer };
  // The same refusal the offer itself would get (a bad name, an unknown hash, busy): no point sending it.
  if (isRefused(checked)) return replies.refuse(checked.refusal, () => report.refused(r, checked.refusal, checked.name));
  const folder = (offer.flags & OfferFlag.Directory) !== 0;
  // The sender waits while this side hashes: its silence meanwhile is not its fault.
  const holding = conn.local(() => (folder ? heldFolder(ctx, checked) : held(ctx, checked, offer))).catch(() => undefined);
  replies.push(
    holding.then((digest) => {
      if (!digest) return { code: NOT_HELD.code, digest: Buffer.alloc(0), message: '', report: () => {} };
      const path = join(ctx.target.path, checked.name);
      const unchanged = { name: checked.name, path, bytes: offer.size, algorithm: checked.algorithm, digest, ...(folder ? { directory: true as const } : {}) };
      return { code: 'OK' as const, digest, message: '', report: () => report.unchanged(r, unchanged) };
    }),
  );
}

/** The digest of the file this receiver holds under the offered name, if it passes the quick check. */
async function held(ctx: SessionContext, file: Checked, offer: OfferFrame): Promise<Buffer | undefined> {
  if (ctx.stdout) return undefined;
  const folder = ctx.tree.existingParentOf(file.parts);
  if (!folder) return undefined;
  try {
    const at = folder.at(file.parts[file.parts.length - 1]!);
    const info = lstatSync(at, { throwIfNoEntry: false });
    // Within a millisecond: the receiver set it to the offered millisecond (place.ts), reading back may add a fraction.
    if (!info?.isFile() || info.size !== offer.size || Math.abs(info.mtimeMs - offer.mtimeMs) >= 1) return undefined;
    return await digestOfFile(file.algorithm, at, offer.size);
  } finally {
    folder.close();
  }
}

/** The digest of the files held below the offered folder (held-folder.ts). */
function heldFolder(ctx: SessionContext, folder: Checked): Promise<Buffer | undefined> {
  return ctx.stdout ? Promise.resolve(undefined) : heldFolderDigest(ctx.tree, folder.parts, folder.algorithm);
}

/**
 * Whether this offer may replace an existing file of its name: always with
 * --overwrite; with --allow-update only when the sender asks (REPLACE).
 * Without either, an existing name is refused (ERR_EXISTS), whatever the
 * sender asks: a code holder cannot replace files the receiver did not
 * agree to have replaced.
 */
export function replaces(ctx: Pick<SessionContext, 'overwrite' | 'allowUpdate'>, offer: OfferFrame): boolean {
  return ctx.overwrite || (ctx.allowUpdate && (offer.flags & OfferFlag.Replace) !== 0);
}
