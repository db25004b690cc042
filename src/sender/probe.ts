/**
 * Re-sending a folder (docs/protocol.md, section 5.3, PROBE): before any
 * file is offered, each one is probed, "do you already have this file?",
 * pipelined like eager offers (a window of verdicts due, in offer order).
 * The receiver answers with the digest of the file it holds there (size
 * and mtime alike), and this side hashes its own to compare: the same
 * content is not sent again, and counts as delivered (`unchanged`). A file
 * the receiver does not hold, or holds with other content, is sent as
 * usual: refused ERR_EXISTS unless the receiver lets it be replaced.
 * A folder named on the command line is probed whole first: when all its
 * files are the same there, that one round trip settles them all.
 */
import type { SenderConnection } from '../connection.js';
import { digestOfFile } from '../file-digest.js';
import { FolderDigest } from '../folder-digest.js';
import type { HashAlgorithm } from '../hash.js';
import { OfferFlag } from '../protocol/constants.js';
import { encodeOffer, type VerdictFrame } from '../protocol/messages.js';
import { VERDICT_MS_PER_BYTE } from './offer.js';
import { refused, unchanged, type FileResult } from './results.js';
import type { Entry, FileEntry } from './walk.js';

/** Probes whose verdicts may be due at once: as many as eager offers (eager.ts). */
const WINDOW_FILES = 256;
/**
 * Largest folder probed whole. The receiver waits while this side hashes
 * the folder to compare, and gives up after its timeout; many small files
 * are where a probe per file costs most (about 92 bytes each), big ones
 * make it negligible. 1 GiB hashes in about 2 s even from a slow disk.
 */
const FOLDER_PROBE_MAX_BYTES = 1024 * 1024 * 1024;

interface InFlight {
  entry: FileEntry;
  started: number;
}

/** The probes of one connection, and what is left to send once they are answered. */
export class ProbeWindow {
  private readonly inFlight: InFlight[] = [];
  /** Bytes of the files probed and not answered: the receiver hashes them before it answers. */
  private bytes = 0;
  private readonly send = new Set<Entry>();

  constructor(
    private readonly conn: SenderConnection,
    private readonly algorithm: HashAlgorithm,
    private readonly record: (entry: Entry, result: FileResult) => void,
  ) {}

  /** The oldest probe still without a verdict: the one a failure of the session is reported against. */
  get oldest(): FileEntry | undefined {
    return this.inFlight[0]?.entry;
  }

  /**
   * Probes every regular file of `todo`; resolves with what must still be
   * offered, in order: folders, standard input, and the files the receiver
   * does not hold the same. The others have their result recorded.
   */
  async run(todo: readonly Entry[]): Promise<Entry[]> {
    const { same, absent } = await this.folders(todo);
    for (const entry of todo) {
      if (same.has(entry)) continue;
      if (entry.kind !== 'file' || absent.has(entry)) {
        this.send.add(entry);
        continue;
      }
      this.conn.batch();
      this.conn.enter('EAGER');
      await this.conn.write(encodeOffer({ ...entry, algorithm: this.algorithm.id, flags: OfferFlag.Probe }));
      this.inFlight.push({ entry, started: performance.now() });
      this.bytes += entry.size;
      while (this.inFlight.length >= WINDOW_FILES) await this.settle();
    }
    while (this.inFlight.length > 0) await this.settle();
    return todo.filter((e) => this.send.has(e));
  }

  /**
   * Probes each folder named on the command line as a whole, first: when
   * the receiver holds all its files the same (the folder digest matches),
   * they are recorded unchanged at the cost of one round trip; when it
   * holds none (the digest of no file: the folder is not there), they are
   * all to be sent, with no probe each. Returns both sets; the rest are
   * probed one by one.
   */
  private async folders(todo: readonly Entry[]): Promise<{ same: Set<Entry>; absent: Set<Entry> }> {
    const same = new Set<Entry>();
    const absent = new Set<Entry>();
    for (const folder of todo) {
      if (folder.kind !== 'directory' || folder.name.includes('/')) continue;
      const files = todo.filter((e): e is FileEntry => e.kind === 'file' && e.name.startsWith(`${folder.name}/`));
      const bytes = files.reduce((sum, f) => sum + f.size, 0);
      // One file or none: a probe of the folder saves nothing.
      if (files.length < 2 || bytes > FOLDER_PROBE_MAX_BYTES) continue;
      const started = performance.now();
      this.conn.enter('EAGER');
      await this.conn.write(encodeOffer({ ...folder, size: 0, algorithm: this.algorithm.id, flags: OfferFlag.Probe | OfferFlag.Directory }));
      const verdict = await this.conn.expect('EAGER', { withinMs: this.conn.timeoutMs + Math.ceil(bytes * VERDICT_MS_PER_BYTE) });
      this.conn.enter('IDLE');
      if (verdict.code !== 'OK' || verdict.digest.length !== this.algorithm.digestLength) continue;
      if (verdict.digest.equals(new FolderDigest().digest(this.algorithm))) {
        for (const file of files) absent.add(file);
        continue;
      }
      const ours = await this.conn.local(() => ourFolder(this.algorithm, folder.name, files));
      if (!ours?.digest.equals(verdict.digest)) continue;
      for (const [i, file] of files.entries()) {
        this.record(file, unchanged(file, this.algorithm, ours.digests[i]!, started));
        same.add(file);
      }
    }
    return { same, absent };
  }

  private async settle(): Promise<void> {
    // The receiver hashes what it holds before answering: allow for the bytes ahead of this answer too.
    const withinMs = this.conn.timeoutMs + Math.ceil(this.bytes * VERDICT_MS_PER_BYTE);
    const verdict = await this.conn.expect('EAGER', { withinMs });
    const probed = this.inFlight.shift()!;
    this.conn.enter(this.inFlight.length > 0 ? 'EAGER' : 'IDLE');
    this.bytes -= probed.entry.size;
    await this.judge(probed, verdict);
  }

  private async judge({ entry, started }: InFlight, verdict: VerdictFrame): Promise<void> {
    if (verdict.code === 'ERR_NOT_HELD') {
      this.send.add(entry);
      return;
    }
    if (verdict.code !== 'OK') {
      // The refusal the offer itself would get (a bad name, too large, busy): nothing to send.
      this.record(entry, refused(entry, verdict, started));
      return;
    }
    const ours = verdict.digest.length === this.algorithm.digestLength ? await this.conn.local(() => digestOfFile(this.algorithm, entry.path, entry.size)) : undefined;
    if (ours && ours.equals(verdict.digest)) this.record(entry, unchanged(entry, this.algorithm, ours, started));
    // Other content under that name (or this file changed, or cannot be read): the offer says what happens.
    else this.send.add(entry);
  }
}

/** Our folder digest over `files` (all below `name`), and each file's digest; undefined when one cannot be read as walked. */
async function ourFolder(algorithm: HashAlgorithm, name: string, files: readonly FileEntry[]): Promise<{ digest: Buffer; digests: Buffer[] } | undefined> {
  const sum = new FolderDigest();
  const digests: Buffer[] = [];
  for (const file of files) {
    const digest = await digestOfFile(algorithm, file.path, file.size);
    if (!digest) return undefined;
    digests.push(digest);
    sum.add(file.name.slice(name.length + 1), file.size, file.mtimeMs, digest);
  }
  return { digest: sum.digest(algorithm), digests };
}
