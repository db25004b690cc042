/**
 * Where an incoming relative path may land. The path's components were
 * checked by validatePath (no '..', no '/', no empty part); what is left to
 * check is the target folder itself: a directory on the way that is a
 * symlink (or a file) must not be followed, or a sender could write outside
 * --dir through a link someone left there.
 */
import { lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../protocol/errors.js';
import { PARTIAL_MAX_AGE_MS, TEMP_PREFIX, TEMP_SUFFIX } from './sink.js';

/**
 * One session's view of the target folder: directories already checked or
 * made are remembered, so a tree of 10,000 files costs one lstat per folder,
 * not per file.
 */
export class TargetTree {
  readonly root: string;
  private readonly checked = new Set<string>();
  /** Directories this session made: the sender's mode and mtime are applied only to these. */
  readonly created = new Set<string>();

  constructor(root: string) {
    this.root = root;
  }

  /**
   * Makes sure every directory on the way to `parts` (all but the last
   * component) is a real directory inside the root, creating what is
   * missing. Returns the folder the last component goes in.
   */
  async parentOf(parts: readonly string[]): Promise<string> {
    let dir = this.root;
    let relative = '';
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      relative = relative === '' ? part : `${relative}/${part}`;
      await this.ensureDirectory(dir, relative);
    }
    return dir;
  }

  /** The directory `parts` itself, made if missing. */
  async directory(parts: readonly string[]): Promise<string> {
    const parent = await this.parentOf(parts);
    const dir = join(parent, parts[parts.length - 1]!);
    await this.ensureDirectory(dir, parts.join('/'));
    return dir;
  }

  private async ensureDirectory(dir: string, relative: string): Promise<void> {
    if (this.checked.has(relative)) return;
    try {
      await mkdir(dir);
      this.created.add(relative);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw ioFailure(err, `cannot create the folder ${relative}`);
      const info = await lstat(dir);
      if (info.isSymbolicLink()) throw new FerryError('ERR_BAD_NAME', `${relative} is a symlink on the receiver; ferry does not write through links`);
      if (!info.isDirectory()) throw new FerryError('ERR_EXISTS', `${relative} exists on the receiver and is not a folder`);
    }
    this.checked.add(relative);
  }
}

/**
 * Deletes kept partial files (`.ferry-*.part`) under `root`, all of them or
 * only those older than PARTIAL_MAX_AGE_MS. Does not follow symlinks.
 * Reads at most `maxDirs` folders: the sweep a receiver makes when it starts
 * must not walk a whole home directory given as --dir. Returns how many
 * files were deleted.
 */
export async function cleanPartials(root: string, options: { all: boolean; now?: number; maxDirs?: number }): Promise<number> {
  const now = options.now ?? Date.now();
  let count = 0;
  let budget = options.maxDirs ?? Number.POSITIVE_INFINITY;
  // Breadth first: the folders nearest the root, where transfers land, come first.
  const pending = [root];
  while (pending.length > 0 && budget-- > 0) {
    const dir = pending.shift()!;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
      } else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX) && entry.name.endsWith(TEMP_SUFFIX)) {
        if (!options.all) {
          const info = await lstat(path).catch(() => null);
          if (!info || now - info.mtimeMs < PARTIAL_MAX_AGE_MS) continue;
        }
        await unlink(path).then(
          () => count++,
          () => {},
        );
      }
    }
  }
  return count;
}

function ioFailure(err: unknown, what: string): FerryError {
  const code = (err as NodeJS.ErrnoException).code;
  return new FerryError('ERR_IO', `${what}: ${code === 'ENOSPC' ? 'no space left on device' : code ?? String(err)}`, { cause: err });
}
