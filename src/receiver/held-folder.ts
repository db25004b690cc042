/**
 * A probe of a folder (docs/protocol.md, section 5.3): the digest of every
 * regular file this receiver holds below that folder (src/folder-digest.ts),
 * read through directory descriptors like everything below --dir
 * (target.ts). Links and other non-files are left out, as a sender leaves
 * them out, and so are ferry's temporary files. A hidden folder this
 * receiver would not enter, a folder too deep or too full, or a file that
 * changes while read make the answer "not held": the sender then probes
 * file by file. A folder that is not there holds no file: its answer is the
 * digest of none, and the sender sends every file without a probe each.
 */
import { constants as fs, lstatSync, openSync, readdirSync } from 'node:fs';
import { digestOfFile } from '../file-digest.js';
import { FolderDigest } from '../folder-digest.js';
import type { HashAlgorithm } from '../hash.js';
import { isTempName } from './partials.js';
import { Folder, type TargetTree } from './target.js';

/** Bounds the work one probe can ask for: beyond these, file by file. */
const MAX_FILES = 100_000;
const MAX_DEPTH = 64;
/** Small files are read with blocking calls: other sessions get the event loop back this often. */
const YIELD_EVERY = 256;

/** The folder digest of `parts` below --dir, or undefined when not held (or not to be told). */
export async function heldFolderDigest(tree: TargetTree, parts: readonly string[], algorithm: HashAlgorithm): Promise<Buffer | undefined> {
  // The parent of a made-up child: every component of `parts` is then checked as a folder on the way.
  const folder = tree.existingFolder(parts);
  // Not there at all: nothing is held below it, which the sender may act on (the digest of no file).
  if (!folder) return tree.missingFolder(parts) ? new FolderDigest().digest(algorithm) : undefined;
  const sum = new FolderDigest();
  try {
    return (await addFolder({ tree, algorithm, sum }, folder, '', 0)) ? sum.digest(algorithm) : undefined;
  } catch {
    return undefined;
  } finally {
    folder.close();
  }
}

interface Walk {
  tree: TargetTree;
  algorithm: HashAlgorithm;
  sum: FolderDigest;
}

/** Adds the files below `folder` (at `prefix` below the probed folder); false when the answer must be "not held". */
async function addFolder(walk: Walk, folder: Folder, prefix: string, depth: number): Promise<boolean> {
  if (depth > MAX_DEPTH) return false;
  for (const entry of readdirSync(folder.path, { withFileTypes: true })) {
    if (isTempName(entry.name)) continue;
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      const relative = `${folder.relative}/${entry.name}`;
      if (!walk.tree.mayEnter(entry.name, relative)) return false;
      const sub = new Folder(openSync(folder.at(entry.name), fs.O_RDONLY | fs.O_DIRECTORY | fs.O_NOFOLLOW), relative);
      try {
        if (!(await addFolder(walk, sub, path, depth + 1))) return false;
      } finally {
        sub.close();
      }
    } else if (entry.isFile()) {
      if (walk.sum.files >= MAX_FILES) return false;
      if (walk.sum.files % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((resolve) => setImmediate(resolve));
      const info = lstatSync(folder.at(entry.name), { throwIfNoEntry: false });
      if (!info?.isFile()) return false;
      const digest = await digestOfFile(walk.algorithm, folder.at(entry.name), info.size);
      if (!digest) return false;
      walk.sum.add(path, info.size, info.mtimeMs, digest);
    }
  }
  return true;
}
