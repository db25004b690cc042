/**
 * The receiver's `--dir`, reached only through directory descriptors.
 *
 * A local user who can write inside `--dir` may rename a folder that ferry
 * checked and put a symlink in its place. A path string that is resolved
 * again after it was checked follows that link (rsync's CVE-2024-12747
 * class). So no path string below `--dir` is ever resolved twice: `--dir`
 * is opened once, and every folder below it is opened from its parent's
 * descriptor, one component at a time, with O_NOFOLLOW. Files are then
 * created, linked, renamed and deleted relative to the descriptor of the
 * folder they belong in, and modes and times are set on descriptors.
 *
 * Node has no openat(), but on Linux `/proc/self/fd/N/name` resolves `name`
 * inside the very folder descriptor N refers to, wherever that folder is
 * now: the same semantics. Folder.at() builds those paths.
 */
import { closeSync, constants as fs, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { errnoOf, ioError } from '../fs-errors.js';
import { printableName } from '../printable.js';
import { FerryError } from '../protocol/errors.js';

const PROC_FD = '/proc/self/fd';
const OPEN_FOLDER = fs.O_RDONLY | fs.O_DIRECTORY | fs.O_NOFOLLOW;

/** A folder held open: names inside it resolve through its descriptor. */
export class Folder {
  readonly fd: number;
  /** Its path below `--dir` ('' for `--dir` itself), for messages. */
  readonly relative: string;
  private readonly owned: boolean;
  private open = true;

  constructor(fd: number, relative: string, owned = true) {
    this.fd = fd;
    this.relative = relative;
    this.owned = owned;
  }

  /** A path naming `name` inside this very folder, however it was renamed since it was opened. */
  at(name: string): string {
    return `${PROC_FD}/${this.fd}/${name}`;
  }

  /** The folder itself, as a path (for readdir). */
  get path(): string {
    return `${PROC_FD}/${this.fd}`;
  }

  /** Closes the descriptor; `--dir` itself stays open for the receiver's lifetime. Idempotent. */
  close(): void {
    if (!this.owned || !this.open) return;
    this.open = false;
    closeSync(this.fd);
  }
}

/** The process umask, read without changing it (process.umask() with no argument is deprecated). */
export function currentUmask(): number {
  try {
    const line = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (line) return parseInt(line[1]!, 8);
  } catch {
    // Not Linux: fall through.
  }
  return process.umask();
}

/**
 * `--dir`, open. Also remembers which folders this receiver made, in any
 * session: only those get the sender's mode and mtime (without
 * --overwrite), and only those may be entered when hidden (TargetTree).
 */
export class TargetDir {
  /** As the user gave it: event paths are built from it. */
  readonly path: string;
  readonly root: Folder;
  /** Applied to every mode a sender asks for, as cp and tar do for a normal user. */
  readonly umask: number;
  /** Relative paths of the folders this receiver created. */
  readonly made = new Set<string>();

  private constructor(path: string, fd: number, umask: number) {
    this.path = path;
    this.root = new Folder(fd, '', false);
    this.umask = umask;
  }

  /** Opens `dir`. ERR_USAGE when it is not a folder, or when /proc/self/fd cannot give descriptor-relative paths. */
  static open(dir: string): TargetDir {
    let fd: number;
    try {
      fd = openSync(dir, fs.O_RDONLY | fs.O_DIRECTORY);
    } catch (err) {
      const code = errnoOf(err);
      throw new FerryError('ERR_USAGE', `--dir ${dir}: ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : `cannot open (${code ?? String(err)})`}`);
    }
    const target = new TargetDir(dir, fd, currentUmask());
    const held = fstatSync(fd);
    let seen;
    try {
      seen = statSync(target.root.path);
    } catch {
      seen = undefined;
    }
    if (!seen || seen.ino !== held.ino || seen.dev !== held.dev) {
      closeSync(fd);
      throw new FerryError('ERR_USAGE', `ferry receive needs Linux's ${PROC_FD} to write safely below --dir`);
    }
    return target;
  }

  close(): void {
    closeSync(this.root.fd);
  }
}

/**
 * One offer's way through `--dir`: folders are opened (and made when
 * missing) from `--dir` down, each time, so nothing checked earlier is
 * trusted later. An existing folder whose name begins with '.' and that
 * this receiver did not make is entered only with `allowHidden`: a code
 * holder cannot add to `proj/.git/hooks` or `.ssh` that were there before.
 */
export class TargetTree {
  private readonly target: TargetDir;
  private readonly allowHidden: boolean;

  constructor(target: TargetDir, options: { allowHidden: boolean }) {
    this.target = target;
    this.allowHidden = options.allowHidden;
  }

  /** Whether this receiver made the folder at `relative`. */
  made(relative: string): boolean {
    return this.target.made.has(relative);
  }

  /** Opens the folder the last component of `parts` goes in, making missing ones. The caller closes it. */
  parentOf(parts: readonly string[]): Folder {
    return this.walk(parts.slice(0, -1));
  }

  /** Opens the folder `parts` itself, made if missing. The caller closes it. */
  directory(parts: readonly string[]): Folder {
    return this.walk(parts);
  }

  /**
   * Opens the folder the last component of `parts` goes in, only if it is
   * there and this tree would enter it (no folder is made, no link followed,
   * no hidden folder entered that enter() would refuse): what a probe may
   * look into. Undefined otherwise. The caller closes it.
   */
  existingParentOf(parts: readonly string[]): Folder | undefined {
    return this.existingFolder(parts.slice(0, -1));
  }

  /** The existing folder `parts` itself, opened as enter() would but making nothing; undefined when missing or not to be entered. */
  existingFolder(parts: readonly string[]): Folder | undefined {
    let relative = '';
    for (const part of parts) {
      relative = relative === '' ? part : `${relative}/${part}`;
      if (!this.mayEnter(part, relative)) return undefined;
    }
    return openExisting(this.target, parts);
  }

  /**
   * Whether the folder `parts` is not there at all: some component on the
   * way is missing, and every one before it is a folder this tree would
   * enter. False when it exists, and when the way is blocked (a link, a
   * file, a hidden folder not to be entered): what a probe may tell.
   */
  missingFolder(parts: readonly string[]): boolean {
    let folder = this.target.root;
    try {
      for (const part of parts) {
        const relative = folder.relative === '' ? part : `${folder.relative}/${part}`;
        const fd = openFolder(folder, part, relative);
        if (fd === undefined) return true;
        folder.close();
        folder = new Folder(fd, relative);
        if (!this.mayEnter(part, relative)) return false;
      }
      return false;
    } catch {
      return false;
    } finally {
      folder.close();
    }
  }

  /** Whether enter() would go into the existing folder `part` at `relative`: not a hidden one that was there before, without allowHidden. */
  mayEnter(part: string, relative: string): boolean {
    return !part.startsWith('.') || this.allowHidden || this.target.made.has(relative);
  }

  private walk(parts: readonly string[]): Folder {
    let folder = this.target.root;
    try {
      for (const part of parts) {
        const relative = folder.relative === '' ? part : `${folder.relative}/${part}`;
        const next = this.enter(folder, part, relative);
        folder.close();
        folder = next;
      }
    } catch (err) {
      folder.close();
      throw err;
    }
    return folder;
  }

  private enter(parent: Folder, part: string, relative: string): Folder {
    let fd = openFolder(parent, part, relative);
    if (fd === undefined) {
      try {
        mkdirSync(parent.at(part), 0o777);
        this.target.made.add(relative);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw ioError(err, `cannot create the folder ${printableName(relative)}`);
      }
      fd = openFolder(parent, part, relative);
      if (fd === undefined) throw new FerryError('ERR_IO', `the folder ${printableName(relative)} vanished while being made`);
    }
    if (!this.mayEnter(part, relative)) {
      closeSync(fd);
      throw new FerryError('ERR_BAD_NAME', `${printableName(relative)} is a hidden folder that was there before; the receiver writes into one only with --allow-hidden`);
    }
    return new Folder(fd, relative);
  }
}

/** The descriptor of folder `part` in `parent`, undefined when missing; never follows a link. */
function openFolder(parent: Folder, part: string, relative: string): number | undefined {
  try {
    return openSync(parent.at(part), OPEN_FOLDER);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR' || code === 'ELOOP') {
      const info = lstatSync(parent.at(part), { throwIfNoEntry: false });
      if (info?.isSymbolicLink()) throw new FerryError('ERR_BAD_NAME', `${printableName(relative)} is a symlink on the receiver; ferry does not write through links`);
      throw new FerryError('ERR_EXISTS', `${printableName(relative)} exists on the receiver and is not a folder`);
    }
    throw ioError(err, `cannot open the folder ${printableName(relative)}`);
  }
}

/** Opens the existing folder `parts` below `--dir` (no folder is made, no link followed); undefined when it is not there. */
export function openExisting(target: TargetDir, parts: readonly string[]): Folder | undefined {
  let folder = target.root;
  try {
    for (const part of parts) {
      const relative = folder.relative === '' ? part : `${folder.relative}/${part}`;
      const fd = openFolder(folder, part, relative);
      folder.close();
      if (fd === undefined) return undefined;
      folder = new Folder(fd, relative);
    }
  } catch {
    folder.close();
    return undefined;
  }
  return folder;
}
