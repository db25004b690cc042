/**
 * Turns the paths given to `ferry send` into the list of what is offered:
 * files under their base name, directories as their whole tree under their
 * base name, depth first with each folder after its contents (so the
 * receiver sets a folder's mode and mtime once nothing more goes in it).
 *
 * Inside a tree, symlinks are skipped with a warning: following them could
 * send files from anywhere, or loop; recreating them could point the
 * receiver outside its folder. A symlink named on the command line is
 * followed, as cp does.
 */
import { lstat, opendir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { EventListener } from '../events.js';
import { MAX_FILE_SIZE } from '../protocol/constants.js';
import { FerryError } from '../protocol/errors.js';
import { cannotRead, inspectSource, type SourceFile } from './source.js';

export interface FileEntry extends SourceFile {
  kind: 'file';
}
export interface DirectoryEntry {
  kind: 'directory';
  path: string;
  name: string;
  mode: number;
  mtimeMs: number;
}
export interface StdinEntry {
  kind: 'stdin';
  path: '-';
  name: string;
}
export type Entry = FileEntry | DirectoryEntry | StdinEntry;

/** Files statted at once while walking a tree. */
const STAT_CONCURRENCY = 32;

/**
 * Walks `paths` ('-' is stdin, offered as `stdinName`). Usage errors (exit 2)
 * for what cannot be sent, before anything is: a missing path, an unreadable
 * file or folder.
 */
export async function collect(paths: readonly string[], options: { stdinName?: string; emit: EventListener }): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const path of paths) {
    if (path === '-') {
      if (options.stdinName === undefined) throw new FerryError('ERR_USAGE', 'sending standard input (-) needs --name NAME');
      entries.push({ kind: 'stdin', path: '-', name: options.stdinName });
      continue;
    }
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new FerryError('ERR_NOT_FOUND', `${path}: no such file or folder`);
      throw cannotRead(path, err);
    }
    if (info.isDirectory()) {
      const name = basename(path.replace(/\/+$/, '')) || basename(process.cwd());
      if (name === '.' || name === '..' || name === '') throw new FerryError('ERR_USAGE', `${path}: name the folder itself, not . or ..`);
      await walk(path, name, entries, options.emit);
      entries.push({ kind: 'directory', path, name, mode: info.mode & 0o777, mtimeMs: info.mtimeMs });
    } else {
      entries.push({ kind: 'file', ...(await inspectSource(path)) });
    }
  }
  if (entries.length === 0) throw new FerryError('ERR_USAGE', 'nothing to send');
  return entries;
}

async function walk(dir: string, prefix: string, out: Entry[], emit: EventListener): Promise<void> {
  let names: Array<{ name: string; kind: 'file' | 'directory' | 'symlink' | 'special' }>;
  try {
    names = [];
    for await (const dirent of await opendir(dir)) {
      const kind = dirent.isFile() ? 'file' : dirent.isDirectory() ? 'directory' : dirent.isSymbolicLink() ? 'symlink' : 'special';
      names.push({ name: dirent.name, kind });
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FerryError('ERR_UNREADABLE', `${dir}: cannot list (${code ?? 'error'})`, { cause: err });
  }
  // Byte order, as `ls` in the C locale: the same tree is always sent the same way.
  names.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const files = names.filter((n) => n.kind === 'file');
  const stats = await mapLimited(files, STAT_CONCURRENCY, async (n) => {
    const path = join(dir, n.name);
    try {
      return await lstat(path);
    } catch (err) {
      throw cannotRead(path, err);
    }
  });
  const statOf = new Map(files.map((n, i) => [n.name, stats[i]!]));
  for (const n of names) {
    const path = join(dir, n.name);
    const name = `${prefix}/${n.name}`;
    if (n.kind === 'symlink' || n.kind === 'special') {
      emit({ event: 'skipped', name, reason: n.kind });
      continue;
    }
    if (n.kind === 'directory') {
      const info = await lstat(path);
      await walk(path, name, out, emit);
      out.push({ kind: 'directory', path, name, mode: info.mode & 0o777, mtimeMs: info.mtimeMs });
      continue;
    }
    const info = statOf.get(n.name)!;
    if (info.size > MAX_FILE_SIZE) throw new FerryError('ERR_USAGE', `${path}: too large`);
    out.push({ kind: 'file', path, name, size: info.size, mode: info.mode & 0o777, mtimeMs: info.mtimeMs });
  }
}

async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
