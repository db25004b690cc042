/**
 * Group commit (docs/protocol.md, section 4, "Verdicts and durability"):
 * small files are made durable many at a time, never one before its
 * verdict says so.
 *
 * An eager file is written to its temporary name at once; it then waits
 * here with its descriptor open. One batch at a time is committed:
 *
 *   1. the data of every file in the batch is flushed, all at once (one
 *      fdatasync each, in the thread pool, so the file system writes them
 *      together);
 *   2. each flushed file is named into place (place.ts);
 *   3. every folder the batch named files in is flushed once;
 *   4. then, and only then, each file's add() settles and its VERDICT may go.
 *
 * Files that arrive while a batch is being committed form the next one, so
 * a batch grows with the disk's latency and no timer is needed. A crash
 * before step 1 completes leaves only temporary files (`.ferry-*.part`);
 * a crash before step 3 leaves named files whose data is on the disk, but
 * no verdict has said so.
 */
import { closeSync, fstatSync, fsync } from 'node:fs';
import { ioError } from '../fs-errors.js';
import { datasync } from './fsync.js';
import { nameIntoPlace, removeQuietly } from './place.js';
import type { Folder } from './target.js';

/** A written temporary file waiting to be made durable and named. */
export interface Written {
  /** The folder it is in, open; the commit closes it (it keeps one descriptor per folder a batch names files in). */
  folder: Folder;
  /** Its descriptor, open; the commit closes it. */
  fd: number;
  temp: string;
  name: string;
  overwrite: boolean;
}

/** How a batch reaches the disk: a seam for tests (a slow or failing disk). */
export interface Flusher {
  /** Flushes a file's data (fdatasync). */
  data(fd: number): Promise<void>;
  /** Flushes a folder, so the names made in it last (fsync). */
  folder(fd: number): Promise<void>;
}

export const diskFlusher: Flusher = {
  data: datasync,
  folder: (fd) => new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(ioError(err, 'cannot flush the folder to disk')) : resolve()))),
};

interface Entry {
  file: Written;
  settle: (err: unknown) => void;
}

/**
 * Written files waiting in every batch of the process, at most: each holds
 * a descriptor until its commit. 4,096 is a few senders' windows
 * (eager.ts), far below the usual descriptor limit.
 */
const MAX_HELD = 4096;
let held = 0;
const roomWaiters: Array<() => void> = [];

/** Resolves when a file may be written and queued: while MAX_HELD are held, after a commit frees some. */
export function heldRoom(): Promise<void> {
  if (held < MAX_HELD) return Promise.resolve();
  return new Promise((resolve) => roomWaiters.push(resolve));
}

function release(count: number): void {
  held -= count;
  while (held < MAX_HELD && roomWaiters.length > 0) roomWaiters.shift()!();
}

export class GroupCommit {
  private waiting: Entry[] = [];
  private committing = false;
  /** The folders of the batch being gathered, one descriptor each (by device and inode). */
  private folders = new Map<string, Folder>();

  constructor(private readonly flusher: Flusher = diskFlusher) {}

  /**
   * Queues a written file (after heldRoom()). Resolves once it is flushed,
   * named and its folder flushed; rejects with its own failure (the
   * temporary file is then deleted). Its descriptor and its folder's are
   * closed either way.
   */
  add(written: Written): Promise<void> {
    held++;
    const file = { ...written, folder: this.sharedFolder(written.folder) };
    return new Promise((resolve, reject) => {
      this.waiting.push({ file, settle: (err) => (err === undefined ? resolve() : reject(err)) });
      // After the current read: the other files of the same chunk of input join this batch.
      if (!this.committing) {
        this.committing = true;
        setImmediate(() => void this.next());
      }
    });
  }

  /**
   * One descriptor per folder in a batch: two descriptors of one device and
   * inode are the same folder, wherever it has been moved, so names made
   * through either land in the same place.
   */
  private sharedFolder(folder: Folder): Folder {
    let key: string;
    try {
      const info = fstatSync(folder.fd);
      key = `${info.dev}:${info.ino}`;
    } catch {
      return folder;
    }
    const same = this.folders.get(key);
    if (!same) {
      this.folders.set(key, folder);
      return folder;
    }
    folder.close();
    return same;
  }

  private async next(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      const folders = this.folders;
      this.waiting = [];
      this.folders = new Map();
      try {
        await this.commit(batch);
      } finally {
        for (const folder of folders.values()) folder.close();
        release(batch.length);
      }
    }
    this.committing = false;
  }

  private async commit(batch: Entry[]): Promise<void> {
    const flushed = await Promise.allSettled(batch.map((e) => this.flusher.data(e.file.fd)));
    const failures = new Map<Entry, unknown>();
    const named: Entry[] = [];
    batch.forEach((entry, i) => {
      const { file } = entry;
      const result = flushed[i]!;
      try {
        closeSync(file.fd);
        if (result.status === 'rejected') throw result.reason;
        nameIntoPlace(file.folder, file.temp, file.name, file.overwrite);
        named.push(entry);
      } catch (err) {
        removeQuietly(file.folder, file.temp);
        failures.set(entry, err);
      }
    });
    await this.flushFolders(named, failures);
    for (const entry of batch) entry.settle(failures.get(entry));
  }

  /** One flush per folder the batch named files in; a failed one fails the files named there. */
  private async flushFolders(named: Entry[], failures: Map<Entry, unknown>): Promise<void> {
    const byFolder = new Map<Folder, Entry[]>();
    for (const entry of named) {
      const group = byFolder.get(entry.file.folder);
      if (group) group.push(entry);
      else byFolder.set(entry.file.folder, [entry]);
    }
    await Promise.all(
      [...byFolder].map(([folder, entries]) =>
        this.flusher.folder(folder.fd).catch((err: unknown) => {
          for (const entry of entries) failures.set(entry, err);
        }),
      ),
    );
  }
}
