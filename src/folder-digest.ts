/**
 * The digest of a folder's files (docs/protocol.md, section 5.3, a PROBE
 * of a folder): one digest over every regular file below it, so that a
 * folder sent again costs one probe, not one per file. Both sides compute
 * it the same way: for each file, in byte order of its path relative to
 * the folder ('/' between components), u16 length of that path, the path,
 * u64 size, i64 mtime in milliseconds (truncated toward zero), and the
 * file's content digest; all of it hashed with the offer's algorithm.
 */
import type { HashAlgorithm } from './hash.js';

interface Item {
  path: Buffer;
  size: number;
  mtimeMs: number;
  digest: Buffer;
}

export class FolderDigest {
  private readonly items: Item[] = [];

  /** One file: its path below the folder, size, mtime and content digest. */
  add(path: string, size: number, mtimeMs: number, digest: Buffer): void {
    this.items.push({ path: Buffer.from(path, 'utf8'), size, mtimeMs, digest });
  }

  get files(): number {
    return this.items.length;
  }

  digest(algorithm: HashAlgorithm): Buffer {
    this.items.sort((a, b) => Buffer.compare(a.path, b.path));
    const hasher = algorithm.create();
    for (const item of this.items) {
      const fixed = Buffer.alloc(2 + 16);
      fixed.writeUInt16BE(item.path.length, 0);
      hasher.update(fixed.subarray(0, 2));
      hasher.update(item.path);
      fixed.writeBigUInt64BE(BigInt(item.size), 2);
      fixed.writeBigInt64BE(BigInt(Math.trunc(item.mtimeMs)), 10);
      hasher.update(fixed.subarray(2));
      hasher.update(item.digest);
    }
    return hasher.digest();
  }
}
