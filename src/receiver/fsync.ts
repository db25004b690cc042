/**
 * When bytes must be on the disk. With fsync on (the default; --no-fsync
 * turns it off), every file's data is flushed before the file is named, so a
 * named file survives a power cut; a large file is also flushed in the
 * background as it arrives, so that the flush before naming has little left.
 */
import { fdatasync } from 'node:fs';
import { ioError } from '../fs-errors.js';

/** With fsync on, a large file starts a background flush after this many new bytes. */
export const SYNC_EVERY = 64 * 1024 * 1024;

/** fdatasync() off the event loop (the thread pool waits for the disk, many at once). */
export function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(ioError(err, 'cannot flush to disk')) : resolve())));
}
