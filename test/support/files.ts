/** Temp folders and deterministic file contents for transfer tests. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

const made: string[] = [];

/** A fresh temp folder, removed after the test. */
export async function tempDir(label = 'ferry-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), label));
  made.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Deterministic bytes (a cheap PRNG): reproducible, and not all alike so a shifted byte shows. */
export function pattern(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export async function writeSample(dir: string, name: string, size: number, seed = size + 1): Promise<{ path: string; content: Buffer }> {
  const path = join(dir, name);
  const content = pattern(size, seed);
  await writeFile(path, content);
  return { path, content };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Everything in a folder, hidden files included, sorted. */
export async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** Resolves `promise`, or rejects after `ms`: every wait in a test is bounded. */
export function within<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms))),
  ]);
}

/** Length and SHA-256, to compare files cheaply: vitest's deep equality on MiB-sized Buffers takes seconds. */
export function fingerprint(data: Buffer): { bytes: number; sha256: string } {
  return { bytes: data.length, sha256: sha256(data) };
}

const PARTIAL = /^\.ferry-[0-9a-f]{32}\.part$/;

/** What a user sees in a folder: everything but ferry's hidden partial files. */
export async function visible(dir: string): Promise<string[]> {
  return (await listing(dir)).filter((n) => !PARTIAL.test(n));
}

/** ferry's hidden partial files (kept for a resume) in a folder. */
export async function partials(dir: string): Promise<string[]> {
  return (await listing(dir)).filter((n) => PARTIAL.test(n));
}

/** Source-like text, different for every seed: compresses about as a folder of code does (to a fifth or so), unlike a run of one byte. */
export function sourceText(bytes: number, seed: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `export function f${seed}_${i}(x: number): number { return x * ${(i * 7919 + seed) % 10007} + ${i % 13}; } // step ${i}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** A folder `docs` of source-like text under a new temp dir: `small` files under 64 KiB (sent eagerly) and `large` ones of `largeBytes`. */
export async function textFolder(small: number, large: number, largeBytes: number): Promise<{ dir: string; files: Map<string, Buffer>; bytes: number }> {
  const root = await tempDir('ferry-text-');
  const dir = join(root, 'docs');
  await mkdir(join(dir, 'sub'), { recursive: true });
  const files = new Map<string, Buffer>();
  const sizes = [...Array.from({ length: small }, (_, i) => 2 * 1024 + i * 1500), ...Array.from({ length: large }, (_, i) => largeBytes + i * 123)];
  for (const [i, size] of sizes.entries()) {
    const name = i % 2 === 0 ? `sub/f${i}.ts` : `f${i}.md`;
    const content = sourceText(size, i);
    await writeFile(join(dir, name), content);
    files.set(name, content);
  }
  return { dir, files, bytes: [...files.values()].reduce((sum, c) => sum + c.length, 0) };
}
