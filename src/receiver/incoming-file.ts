/**
 * One accepted file on the receiving side (a file over the eager size, or a
 * stream), from its ACCEPT to its end. It owns the temporary file and makes
 * the one decision of what becomes of its bytes: every way a transfer ends
 * goes through finish(outcome), once.
 *
 * - `name`: verified. Mode (masked by the umask) and mtime are set, the data
 *   flushed (with fsync on), then the file takes its final name, and (with
 *   fsync on) its folder is flushed.
 * - `keep`: cut off (connection lost, timeout, interrupted). The partial stays
 *   hidden for the next offer of the same path to resume; a stream, which
 *   cannot resume, is deleted instead.
 * - `discard`: refused, failed, or not verified. Deleted.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Hasher } from '../hash.js';
import { datasync } from './fsync.js';
import { diskFlusher } from './group-commit.js';
import { createTemp, openPartial, uniqueTempName } from './partials.js';
import { applyMeta, nameIntoPlace, removeQuietly, type Meta } from './place.js';
import { FileSink, type Sink } from './sink.js';
import { StdoutSink } from './stdout-sink.js';
import type { Folder } from './target.js';

export type Outcome = 'name' | 'keep' | 'discard';

type State = 'receiving' | 'named' | 'kept' | 'discarded';

/** Where a file on disk goes and how it is to be saved. */
export interface Destination {
  /** The folder it goes in, open; the IncomingFile closes it. */
  folder: Folder;
  /** Its name in that folder. */
  name: string;
  /** Its relative path, as offered: names its partial. */
  relativePath: string;
  meta: Meta;
  umask: number;
  overwrite: boolean;
  fsync: boolean;
}

export class IncomingFile {
  readonly sink: Sink;
  /** Bytes already held from a cut transfer (0 when starting fresh). */
  readonly offset: number;
  private state: State = 'receiving';
  private readonly disk: { handle: FileHandle; temp: string; to: Destination; fileSink: FileSink; resumable: boolean } | null;

  private constructor(sink: Sink, offset: number, disk: IncomingFile['disk']) {
    this.sink = sink;
    this.offset = offset;
    this.disk = disk;
  }

  /**
   * A file to be saved at `to`: a resumable one goes into its partial
   * (resuming it when it is provably ferry's), a stream into a fresh
   * temporary file. `limit`: a partial longer than this is not resumed.
   */
  static async onDisk(to: Destination, options: { resumable: boolean; limit: number }): Promise<IncomingFile> {
    try {
      const opened = options.resumable
        ? await openPartial(to.folder, to.relativePath, options.limit)
        : { name: uniqueTempName(), handle: undefined, offset: 0 };
      const handle = opened.handle ?? (await createTemp(to.folder, opened.name));
      const fileSink = new FileSink(handle, opened.offset, to.fsync);
      return new IncomingFile(fileSink, opened.offset, { handle, temp: opened.name, to, fileSink, resumable: options.resumable });
    } catch (err) {
      to.folder.close();
      throw err;
    }
  }

  /** A file written to a stream as it arrives (--stdout): nothing to name, keep or delete. */
  static toStream(stream: Writable): IncomingFile {
    return new IncomingFile(new StdoutSink(stream), 0, null);
  }

  /** True while finish() has not been called. */
  get open(): boolean {
    return this.state === 'receiving';
  }

  /** Feeds the bytes held from a cut transfer to `hasher`. */
  hashPrefix(hasher: Hasher): Promise<void> {
    return this.disk ? this.disk.fileSink.hashPrefix(hasher, this.offset) : Promise.resolve();
  }

  /** Drops the bytes held: the sender's file starts differently (RESUME 0). */
  restart(): Promise<void> {
    return this.disk ? this.disk.fileSink.restart() : Promise.resolve();
  }

  /**
   * Ends this file as `outcome` says. Naming can fail (the name was taken
   * meanwhile: ERR_EXISTS; or an I/O error): the file is then deleted and
   * the error thrown. `keep` and `discard` never throw.
   */
  async finish(outcome: Outcome): Promise<void> {
    if (this.state !== 'receiving') return;
    if (!this.disk) {
      this.state = outcome === 'name' ? 'named' : 'discarded';
      if (outcome === 'name') await this.sink.finish();
      return;
    }
    if (outcome === 'name') {
      try {
        await this.save();
        this.state = 'named';
        return;
      } catch (err) {
        await this.remove();
        throw err;
      }
    }
    if (outcome === 'keep' && this.disk.resumable && (await this.keep())) return;
    await this.remove();
  }

  private async save(): Promise<void> {
    const { handle, temp, to, fileSink } = this.disk!;
    await fileSink.finish();
    applyMeta(handle.fd, to.meta, to.umask);
    if (to.fsync) await datasync(handle.fd);
    await handle.close();
    nameIntoPlace(to.folder, temp, to.name, to.overwrite);
    // The name lasts too before the verdict says so, as for a batch of small files (group-commit.ts).
    if (to.fsync) await diskFlusher.folder(to.folder.fd);
    to.folder.close();
  }

  /** Writes out what is queued and closes, keeping the partial. False when that failed. */
  private async keep(): Promise<boolean> {
    const { handle, to, fileSink } = this.disk!;
    try {
      await fileSink.finish();
      await handle.close();
      to.folder.close();
      this.state = 'kept';
      return true;
    } catch {
      return false;
    }
  }

  private async remove(): Promise<void> {
    const { handle, temp, to, fileSink } = this.disk!;
    this.state = 'discarded';
    await fileSink.abandon();
    await handle.close().catch(() => {});
    removeQuietly(to.folder, temp);
    to.folder.close();
  }
}
