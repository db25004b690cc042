/**
 * Re-sending a folder through the real CLI: the second send of the same
 * tree moves almost nothing (counted by a proxy between the two), exits 0
 * and reports every file unchanged; a changed file is refused ERR_EXISTS
 * and the old one kept, unless the sender asks (--update) and the receiver
 * agreed (--allow-update): then it is replaced, verified.
 */
import { mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { receiver, run } from './support/cli.js';
import { pattern, tempDir } from './support/files.js';
import { startProxy } from './support/proxy.js';

type Json = Record<string, unknown>;
const KiB = 1024;

/** `folders` x `files` files of `size` bytes each under `parent/name`. */
async function makeTree(parent: string, name: string, folders: number, files: number, size: number): Promise<{ root: string; bytes: number; names: string[] }> {
  const root = join(parent, name);
  const names: string[] = [];
  for (let d = 0; d < folders; d++) {
    const dir = join(root, `d${String(d).padStart(2, '0')}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < files; f++) {
      const file = `f${String(f).padStart(3, '0')}.bin`;
      await writeFile(join(dir, file), pattern(size, d * files + f + 1));
      names.push(`${name}/d${String(d).padStart(2, '0')}/${file}`);
    }
  }
  return { root, bytes: folders * files * size, names };
}

const of = (events: Json[], kind: string): Json[] => events.filter((e) => e.event === kind);
const summaryOf = (events: Json[]): Json | undefined => events.find((e) => e.event === 'summary');

/** A --once receiver on `dst` and a counting proxy in front of it; sends `args` through the proxy. */
async function sendCounted(dst: string, args: string[], rxFlags: string[] = []): Promise<{ code: number; events: Json[]; rx: Json[]; rxCode: number; bytes: number; stderr: string }> {
  const rx = await receiver(dst, ['--once', ...rxFlags]);
  const proxy = await startProxy({ host: '127.0.0.1', port: rx.port });
  try {
    const tx = await run(['send', ...args, '--to', `127.0.0.1:${proxy.port}`, '--json'], 120_000);
    const rxCode = await rx.exit(20_000);
    return { code: tx.code, events: tx.events, rx: rx.events, rxCode, bytes: proxy.forwarded.up + proxy.forwarded.down, stderr: tx.stderr };
  } finally {
    await proxy.close();
  }
}

describe('ferry send DIR, again', () => {
  test('2,000 files sent twice: the second send moves under 1% of the content bytes, exits 0, every file unchanged', { timeout: 240_000 }, async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const tree = await makeTree(src, 'many', 20, 100, 16 * KiB);

    const first = await sendCounted(dst, [tree.root]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.bytes).toBeGreaterThan(tree.bytes);
    expect(summaryOf(first.events)).toMatchObject({ files: 2000, unchanged: 0, failures: 0 });

    const second = await sendCounted(dst, [tree.root]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.rxCode).toBe(0);
    // Both directions, framing and TLS included.
    expect(second.bytes).toBeLessThan(tree.bytes / 100);
    const unchanged = of(second.events, 'unchanged');
    expect(unchanged.map((e) => e.name).sort()).toEqual([...tree.names].sort());
    for (const e of unchanged) expect(e).toMatchObject({ side: 'send', bytes: 16 * KiB, hash: { algorithm: 'blake3' } });
    expect(of(second.events, 'sent').filter((e) => !e.directory)).toEqual([]);
    expect(of(second.events, 'error')).toEqual([]);
    expect(summaryOf(second.events)).toMatchObject({ files: 0, unchanged: 2000, failures: 0, bytes: 0, exitCode: 0 });
    // One probe of the whole folder settled it: the receiver reports the folder.
    expect(of(second.rx, 'unchanged')).toEqual([expect.objectContaining({ side: 'receive', name: 'many', directory: true })]);
    expect(of(second.rx, 'received').filter((e) => !e.directory)).toEqual([]);
  });

  test('one changed file: refused ERR_EXISTS and the old content kept, with --update alone too; --update and --allow-update replace it, verified', { timeout: 120_000 }, async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const tree = await makeTree(src, 'album', 2, 10, 8 * KiB);
    expect((await sendCounted(dst, [tree.root])).code).toBe(0);

    // Same size, same mtime, other bytes: only the digests tell (the quick check passes, the proof does not).
    const changed = join(tree.root, 'd01', 'f003.bin');
    const { mtimeMs } = await stat(changed);
    const fresh = pattern(8 * KiB, 4242);
    await writeFile(changed, fresh);
    await utimes(changed, mtimeMs / 1000, mtimeMs / 1000);
    const held = join(dst, 'album', 'd01', 'f003.bin');
    const old = await readFile(held);
    expect(old.equals(fresh)).toBe(false);

    for (const [label, txFlags, rxFlags] of [
      ['no --update', [], []],
      ['--update, receiver without --allow-update', ['--update'], []],
    ] as const) {
      const again = await sendCounted(dst, [tree.root, ...txFlags], [...rxFlags]);
      expect(again.code, label).toBe(4);
      expect(of(again.events, 'error'), label).toEqual([expect.objectContaining({ code: 'ERR_EXISTS', exitCode: 4, name: 'album/d01/f003.bin' })]);
      expect(of(again.events, 'unchanged'), label).toHaveLength(19);
      expect(await readFile(held), label).toEqual(old);
    }

    const updated = await sendCounted(dst, [tree.root, '--update'], ['--allow-update']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.rxCode).toBe(0);
    const sent = of(updated.events, 'sent').filter((e) => !e.directory);
    expect(sent).toEqual([expect.objectContaining({ name: 'album/d01/f003.bin', transferred: 8 * KiB })]);
    expect(of(updated.rx, 'received').filter((e) => !e.directory)).toEqual([expect.objectContaining({ name: 'album/d01/f003.bin', hash: sent[0]!.hash })]);
    expect(summaryOf(updated.events)).toMatchObject({ files: 1, unchanged: 19, failures: 0, exitCode: 0 });
    expect(await readFile(held)).toEqual(fresh);
    expect((await readdir(join(dst, 'album', 'd01'))).filter((n) => n.startsWith('.ferry-'))).toEqual([]);
  });
});
