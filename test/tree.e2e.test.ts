/**
 * Directory trees through the real CLI: `ferry send DIR` keeps the tree
 * under the directory's base name, with empty folders and files, unicode
 * names, permission bits and mtimes; symlinks inside the tree are skipped
 * with a warning; existing files are refused unless --overwrite; nothing
 * lands outside --dir, not even through a symlink already in it.
 */
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { receiver, run } from './support/cli.js';
import { fingerprint, listing, pattern, tempDir, writeSample } from './support/files.js';

const KiB = 1024;
const MiB = 1024 * KiB;

type Json = Record<string, unknown>;

/** What a tree entry must look like on arrival: type, permission bits, mtime to the second, and content. */
interface Entry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtimeS: number;
  bytes?: number;
  sha256?: string;
  target?: string;
}

/** Every entry under `root` (not `root` itself), keyed by its relative path with '/' separators; symlinks are not followed. */
async function snapshot(root: string, prefix = ''): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  for (const name of (await readdir(root)).sort()) {
    const path = join(root, name);
    const key = prefix + name;
    out[key] = await entryOf(path);
    if (out[key].type === 'dir') Object.assign(out, await snapshot(path, `${key}/`));
  }
  return out;
}

async function entryOf(path: string): Promise<Entry> {
  const st = await lstat(path);
  const base = { mode: st.mode & 0o7777, mtimeS: Math.floor(st.mtimeMs / 1000) };
  if (st.isSymbolicLink()) return { type: 'symlink', ...base, target: await readlink(path) };
  if (st.isDirectory()) return { type: 'dir', ...base };
  return { type: 'file', ...base, ...fingerprint(await readFile(path)) };
}

/** The tree as it must arrive: symlinks gone, setuid/setgid/sticky dropped, everything under `as/`. */
function expectedArrival(source: Record<string, Entry>, rootEntry: Entry, as: string): Record<string, Entry> {
  const out: Record<string, Entry> = { [as]: { ...rootEntry, mode: rootEntry.mode & 0o777 } };
  for (const [key, entry] of Object.entries(source)) {
    if (entry.type !== 'symlink') out[`${as}/${key}`] = { ...entry, mode: entry.mode & 0o777 };
  }
  return out;
}

const isTemp = (name: string): boolean => /^\.ferry-[0-9a-f]{32}\.part$/.test(name);

/** Every name in the tree, at any depth. */
async function allNames(root: string): Promise<string[]> {
  return Object.keys(await snapshot(root)).map((key) => key.split('/').at(-1)!);
}

/** A past date, whole seconds, different for each entry so a swapped mtime shows. */
const PAST_S = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000;

/**
 * photos/                      0750
 *   a.txt          4 KiB       0600
 *   empty.txt      0
 *   one.bin        1
 *   run.sh         4 KiB       4755 (setuid: arrives 0755)
 *   link -> a.txt              (skipped)
 *   empty-dir/
 *   naïve/日本語.txt  100       0640
 *   2024/big.bin   3 MiB
 *   2024/to-naive -> ../naïve  (skipped, not followed)
 *   2024/march/    0700
 *   2024/march/raw/mid.bin  1 MiB + 1  0444
 */
async function makeTree(parent: string, name = 'photos'): Promise<{ root: string; symlinks: string[] }> {
  const root = join(parent, name);
  const dirs: Array<[string, number]> = [
    ['', 0o750],
    ['empty-dir', 0o755],
    ['naïve', 0o755],
    ['2024', 0o755],
    ['2024/march', 0o700],
    ['2024/march/raw', 0o755],
  ];
  const files: Array<[string, number, number]> = [
    ['a.txt', 4 * KiB, 0o600],
    ['empty.txt', 0, 0o644],
    ['one.bin', 1, 0o644],
    ['run.sh', 4 * KiB, 0o4755],
    ['naïve/日本語.txt', 100, 0o640],
    ['2024/big.bin', 3 * MiB, 0o644],
    ['2024/march/raw/mid.bin', MiB + 1, 0o444],
  ];
  for (const [dir] of dirs) await mkdir(join(root, dir), { recursive: true });
  let i = 0;
  for (const [file, size, mode] of files) {
    await writeFile(join(root, file), pattern(size, 100 + i));
    await chmod(join(root, file), mode);
    const t = PAST_S + 3600 * ++i;
    await utimes(join(root, file), t, t);
  }
  await symlink('a.txt', join(root, 'link'));
  await symlink('../naïve', join(root, '2024', 'to-naive'));
  // Deepest first, and after the links: creating an entry changes its folder's mtime.
  for (const [dir, mode] of [...dirs].reverse()) {
    await chmod(join(root, dir), mode);
    const t = PAST_S + 3600 * ++i;
    await utimes(join(root, dir), t, t);
  }
  return { root, symlinks: [`${name}/link`, `${name}/2024/to-naive`] };
}

/** Two loose files, in a folder of their own. */
async function makeLoose(): Promise<{ paths: string[]; expected: Record<string, Entry> }> {
  const dir = await tempDir();
  const notes = await writeSample(dir, 'notes.txt', 10);
  const data = await writeSample(dir, 'data.bin', 4 * KiB);
  await chmod(notes.path, 0o600);
  await chmod(data.path, 0o644);
  await utimes(notes.path, PAST_S - 86_400, PAST_S - 86_400);
  await utimes(data.path, PAST_S - 2 * 86_400, PAST_S - 2 * 86_400);
  return {
    paths: [notes.path, data.path],
    expected: { 'notes.txt': await entryOf(notes.path), 'data.bin': await entryOf(data.path) },
  };
}

const sentOf = (events: Json[]): Json[] => events.filter((e) => e.event === 'sent');
const receivedOf = (events: Json[]): Json[] => events.filter((e) => e.event === 'received');
const byName = (events: Json[]): Map<string, Json> => new Map(events.map((e) => [e.name as string, e]));

describe('ferry send DIR', () => {
  test('a tree with two loose files in one send: structure, bytes, modes, mtimes; symlinks skipped; JSON events and summary', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const { root, symlinks } = await makeTree(src);
    const loose = await makeLoose();
    const source = await snapshot(root);
    expect(Object.values(source).filter((e) => e.type === 'symlink')).toHaveLength(2);
    const expected = { ...expectedArrival(source, await entryOf(root), 'photos'), ...loose.expected };

    const rx = await receiver(dst, ['--once']);
    // The trailing slash names the same directory: it still arrives as photos/.
    const tx = await run(['send', loose.paths[0]!, `${root}/`, loose.paths[1]!, '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await rx.exit()).toBe(0);

    expect(await snapshot(dst)).toEqual(expected);

    const files = Object.entries(expected).filter(([, e]) => e.type === 'file');
    const dirs = Object.entries(expected).filter(([, e]) => e.type === 'dir');
    const sent = byName(sentOf(tx.events));
    const received = byName(receivedOf(rx.events));
    expect([...sent.keys()].sort()).toEqual(Object.keys(expected).sort());
    expect([...received.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, entry] of files) {
      const s = sent.get(name)!;
      expect(s, name).toMatchObject({ bytes: entry.bytes, hash: { algorithm: 'blake3' }, transferred: entry.bytes, resumedFrom: 0 });
      expect(s.directory, name).toBeFalsy();
      expect(typeof s.seconds).toBe('number');
      expect(received.get(name), name).toMatchObject({ bytes: entry.bytes, path: join(dst, name), hash: s.hash, resumedFrom: 0 });
    }
    for (const [name] of dirs) {
      expect(sent.get(name), name).toMatchObject({ bytes: 0, directory: true });
      expect(received.get(name), name).toMatchObject({ bytes: 0, directory: true });
    }

    const skipped = tx.events.filter((e) => e.event === 'skipped');
    expect(skipped.map((e) => e.name).sort()).toEqual([...symlinks].sort());
    for (const e of skipped) expect(e).toMatchObject({ reason: 'symlink' });

    const summaries = tx.events.filter((e) => e.event === 'summary');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      side: 'send',
      files: files.length,
      directories: dirs.length,
      bytes: files.reduce((sum, [, e]) => sum + e.bytes!, 0),
      failures: 0,
      exitCode: 0,
    });
    expect(typeof summaries[0]!.seconds).toBe('number');
    expect(tx.events.at(-1)).toBe(summaries[0]);
    expect(rx.events).toContainEqual(expect.objectContaining({ event: 'summary', side: 'receive' }));
    expect(tx.events.filter((e) => e.event === 'error')).toEqual([]);
  });

  test('human mode: a symlink inside the tree is reported on stderr as skipped, and the exit code stays 0', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    await mkdir(join(src, 'docs'));
    const file = await writeSample(join(src, 'docs'), 'readme.txt', 50);
    await symlink('readme.txt', join(src, 'docs', 'alias.txt'));
    const rx = await receiver(dst, ['--once']);
    const tx = await run(['send', join(src, 'docs'), '--to', `127.0.0.1:${rx.port}`]);
    expect(tx.code, tx.stderr).toBe(0);
    expect(tx.stderr).toMatch(/skipped/);
    expect(await rx.exit()).toBe(0);
    expect(await listing(join(dst, 'docs'))).toEqual(['readme.txt']);
    expect(fingerprint(await readFile(join(dst, 'docs', 'readme.txt')))).toEqual(fingerprint(file.content));
  });

  test('the same tree again: exit 4 with ERR_EXISTS and nothing changed; with --overwrite: exit 0 and the new content', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const { root } = await makeTree(src, 'album');
    const to = (port: number): string[] => ['--to', `127.0.0.1:${port}`, '--json'];

    const first = await receiver(dst, ['--once']);
    expect((await run(['send', root, ...to(first.port)])).code).toBe(0);
    expect(await first.exit()).toBe(0);
    const before = await snapshot(dst);

    // Same size, same mtime, different bytes: only the content tells.
    const aTxt = join(root, 'a.txt');
    const { mtimeMs } = await lstat(aTxt);
    await writeFile(aTxt, pattern(4 * KiB, 999));
    await utimes(aTxt, mtimeMs / 1000, mtimeMs / 1000);

    const refusing = await receiver(dst, ['--once']);
    const again = await run(['send', root, ...to(refusing.port)]);
    expect(again.code).toBe(4);
    const errors = again.events.filter((e) => e.event === 'error');
    expect(errors).toContainEqual(expect.objectContaining({ code: 'ERR_EXISTS', exitCode: 4, name: 'album/a.txt' }));
    for (const e of errors) expect(e.code).toBe('ERR_EXISTS');
    expect(again.events.find((e) => e.event === 'summary')).toMatchObject({ side: 'send', exitCode: 4 });
    expect(await refusing.exit()).toBe(4);
    const filesOnly = (tree: Record<string, Entry>): Array<[string, Entry]> => Object.entries(tree).filter(([, e]) => e.type !== 'dir');
    expect(filesOnly(await snapshot(dst)), 'files: content, modes, mtimes; no partials').toEqual(filesOnly(before));
    expect(await snapshot(dst), 'folders too (their mtimes)').toEqual(before);

    const overwriting = await receiver(dst, ['--once', '--overwrite']);
    const third = await run(['send', root, ...to(overwriting.port)]);
    expect(third.code, third.stderr).toBe(0);
    expect(await overwriting.exit()).toBe(0);
    expect(await snapshot(dst)).toEqual(expectedArrival(await snapshot(root), await entryOf(root), 'album'));
    expect((await allNames(dst)).filter(isTemp)).toEqual([]);
  });

  test('a symlink already in --dir is not a way out: evil/x is refused with ERR_BAD_NAME (exit 4), nothing written through it', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const outside = await tempDir();
    await mkdir(join(src, 'evil'));
    await writeSample(join(src, 'evil'), 'x', 100);
    await symlink(outside, join(dst, 'evil'));

    const rx = await receiver(dst, ['--once']);
    const tx = await run(['send', join(src, 'evil'), '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code).toBe(4);
    expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_NAME', exitCode: 4 }));
    expect(await rx.exit()).toBe(4);
    expect(await listing(outside)).toEqual([]);
    expect(await listing(dst)).toEqual(['evil']);
    expect((await lstat(join(dst, 'evil'))).isSymbolicLink()).toBe(true);
  });

  test('2,000 small files in 20 folders, one send: all arrive intact', { timeout: 90_000 }, async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const root = join(src, 'many');
    const want = new Map<string, ReturnType<typeof fingerprint>>();
    for (let d = 0; d < 20; d++) {
      const dir = join(root, `d${String(d).padStart(2, '0')}`);
      await mkdir(dir, { recursive: true });
      for (let f = 0; f < 100; f++) {
        const name = `f${String(f).padStart(3, '0')}.txt`;
        const content = pattern(1 + ((d * 100 + f) % 700), d * 100 + f + 1);
        await writeFile(join(dir, name), content);
        want.set(`many/d${String(d).padStart(2, '0')}/${name}`, fingerprint(content));
      }
    }
    const rx = await receiver(dst, ['--once']);
    const tx = await run(['send', root, '--to', `127.0.0.1:${rx.port}`, '--json'], 75_000);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await rx.exit(10_000)).toBe(0);
    expect(tx.events.find((e) => e.event === 'summary')).toMatchObject({ files: 2000, failures: 0, exitCode: 0 });

    const arrived = Object.entries(await snapshot(dst)).filter(([, e]) => e.type === 'file');
    expect(arrived).toHaveLength(2000);
    for (const [name, entry] of arrived) expect({ bytes: entry.bytes, sha256: entry.sha256 }, name).toEqual(want.get(name));
  });
});
