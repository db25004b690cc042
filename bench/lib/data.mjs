/**
 * Test data: written once per invocation from crypto random bytes, 1 MiB at
 * a time (never a whole file in memory), and the checks that a run's
 * destination holds exactly what was sent.
 *
 * A payload is { kind, bytes, files, sources: Map<relative name, source path> }
 * plus `path` (file, dir) or `paths` (parts). The relative names are what
 * must appear in the destination directory.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

export const MiB = 1024 * 1024;
const CHUNK = MiB;

/** Byte-compares (by SHA-256) a run's output when the payload is at most this big. */
const CONTENT_CHECK_LIMIT = 256 * MiB;

/** Writes `bytes` random bytes to every handle: the same bytes, so files can be concatenations. */
async function writeRandom(handles, bytes) {
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(bytes, 1)));
  for (let left = bytes; left > 0; ) {
    const n = Math.min(left, buffer.length);
    randomFillSync(buffer, 0, n);
    for (const h of handles) await h.write(buffer, 0, n);
    left -= n;
  }
}

async function withFiles(paths, fn) {
  const handles = [];
  try {
    for (const p of paths) handles.push(await open(p, 'w'));
    await fn(handles);
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

/** One file of random data. */
export async function makeFile(dir, name, bytes) {
  const path = join(dir, name);
  await withFiles([path], (handles) => writeRandom(handles, bytes));
  return { kind: 'file', path, bytes, files: 1, sources: new Map([[name, path]]) };
}

/**
 * A directory of `count` files of `size` bytes each. Every tool sends the
 * directory itself, so the names to find in the destination are `name/f...`.
 */
export async function makeDir(dir, name, count, size) {
  const root = join(dir, name);
  await mkdir(root, { recursive: true });
  const sources = new Map();
  const width = String(count - 1).length;
  for (let i = 0; i < count; i++) {
    const file = `f${String(i).padStart(width, '0')}.bin`;
    const path = join(root, file);
    await writeFile(path, randomFillSync(Buffer.allocUnsafe(size)));
    sources.set(join(name, file), path);
  }
  return { kind: 'dir', path: root, bytes: count * size, files: count, sources };
}

/**
 * `count` part files of `size` bytes, and one file that is their
 * concatenation: the same bytes sent as many streams or as one.
 */
export async function makePartsAndWhole(dir, count, size) {
  const partsDir = join(dir, 'parts');
  await mkdir(partsDir, { recursive: true });
  const width = String(count - 1).length;
  const wholePath = join(dir, `whole-${count}x${size}.bin`);
  const sources = new Map();
  await withFiles([wholePath], async ([whole]) => {
    for (let i = 0; i < count; i++) {
      const name = `part-${String(i).padStart(width, '0')}.bin`;
      const path = join(partsDir, name);
      await withFiles([path], ([part]) => writeRandom([part, whole], size));
      sources.set(name, path);
    }
  });
  const parts = { kind: 'parts', paths: [...sources.values()], bytes: count * size, files: count, sources };
  const wholeName = basename(wholePath);
  const one = { kind: 'file', path: wholePath, bytes: count * size, files: 1, sources: new Map([[wholeName, wholePath]]) };
  return { parts, whole: one };
}

/** Every regular file under `root`, as relative name -> size. */
async function listTree(root) {
  const found = new Map();
  const walk = async (dir) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) found.set(relative(root, path), (await stat(path)).size);
      else found.set(relative(root, path), -1);
    }
  };
  await walk(root);
  return found;
}

export function sha256(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** Source hashes, computed once per payload and only when needed. */
const sourceHashes = new WeakMap();
async function hashesOf(payload) {
  if (!sourceHashes.has(payload)) {
    const map = new Map();
    for (const [name, path] of payload.sources) map.set(name, await sha256(path));
    sourceHashes.set(payload, map);
  }
  return sourceHashes.get(payload);
}

/**
 * Checks that `dstDir` holds exactly the payload's files with their sizes,
 * and for small payloads their content. Returns a problem description or null.
 */
export async function verifyDestination(payload, dstDir) {
  const found = await listTree(dstDir);
  const missing = [];
  for (const [name, path] of payload.sources) {
    const want = (await stat(path)).size;
    const got = found.get(name);
    if (got !== want) missing.push(`${name}: ${got === undefined ? 'missing' : `${got} bytes, want ${want}`}`);
    found.delete(name);
  }
  const extra = [...found.keys()];
  if (missing.length || extra.length) {
    const parts = [];
    if (missing.length) parts.push(`${missing.length} wrong or missing (${missing.slice(0, 3).join('; ')})`);
    if (extra.length) parts.push(`${extra.length} unexpected (${extra.slice(0, 3).join(', ')})`);
    return `destination check failed: ${parts.join(', ')}`;
  }
  if (payload.bytes <= CONTENT_CHECK_LIMIT) {
    const want = await hashesOf(payload);
    for (const [name, digest] of want) {
      if ((await sha256(join(dstDir, name))) !== digest) return `destination check failed: ${name} differs from the source`;
    }
  }
  return null;
}

export function contentChecked(payload) {
  return payload.bytes <= CONTENT_CHECK_LIMIT;
}
