/** Where incoming paths may land (TargetTree) and the sweep of kept partial files, on a real temp folder. */
import { mkdir, readdir, realpath, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { validatePath } from '../src/protocol/names.js';
import { cleanPartials, partialName, startSweeping } from '../src/receiver/partials.js';
import { TargetDir, TargetTree } from '../src/receiver/target.js';
import { tempDir } from './support/files.js';

describe('validatePath', () => {
  test('relative paths come back as their components', () => {
    expect(validatePath(Buffer.from('a'))).toEqual(['a']);
    expect(validatePath(Buffer.from('photos/2024/naïve.jpg'))).toEqual(['photos', '2024', 'naïve.jpg']);
  });

  test.each([
    ['/etc/passwd', 'ERR_BAD_NAME'],
    ['a/', 'ERR_BAD_NAME'],
    ['a//b', 'ERR_BAD_NAME'],
    ['a/../b', 'ERR_BAD_NAME'],
    ['./a', 'ERR_BAD_NAME'],
    ['a\\b', 'ERR_BAD_NAME'],
    [`${'x'.repeat(256)}/a`, 'ERR_NAME_TOO_LONG'],
    [Array(65).fill('d').join('/'), 'ERR_BAD_NAME'],
    [Array(1100).fill('abc').join('/'), 'ERR_NAME_TOO_LONG'],
  ])('%s is refused with %s', (path, code) => {
    expect(() => validatePath(Buffer.from(path))).toThrow(expect.objectContaining({ code }));
  });
});

describe('TargetTree', () => {
  test('makes missing folders, and says which it made', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'old'));
    const tree = new TargetTree(TargetDir.open(root), { allowHidden: false });
    const folder = tree.parentOf(['old', 'new', 'file.txt']);
    expect(await realpath(folder.path)).toBe(await realpath(join(root, 'old', 'new')));
    folder.close();
    expect([tree.made('old'), tree.made('old/new')]).toEqual([false, true]);
    expect(await readdir(join(root, 'old'))).toEqual(['new']);
  });

  test('never goes through a symlink in the target folder, nor through a file', async () => {
    const root = await tempDir();
    const elsewhere = await tempDir();
    await symlink(elsewhere, join(root, 'evil'));
    await writeFile(join(root, 'plain'), 'x');
    const tree = new TargetTree(TargetDir.open(root), { allowHidden: false });
    expect(() => tree.parentOf(['evil', 'x'])).toThrow(expect.objectContaining({ code: 'ERR_BAD_NAME' }));
    expect(() => tree.directory(['evil'])).toThrow(expect.objectContaining({ code: 'ERR_BAD_NAME' }));
    expect(() => tree.parentOf(['plain', 'x'])).toThrow(expect.objectContaining({ code: 'ERR_EXISTS' }));
    expect(await readdir(elsewhere)).toEqual([]);
  });
});

describe('cleanPartials', () => {
  test('deletes partial files only, at every depth; by age unless all; within its folder budget', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    const fresh = join(root, partialName('fresh.bin'));
    const old = join(root, 'a', 'b', partialName('a/b/old.bin'));
    for (const p of [fresh, old]) await writeFile(p, 'partial');
    await writeFile(join(root, '.keep'), 'not ours');
    await writeFile(join(root, 'a', 'photo.part'), 'not ours either');
    const dayAgo = (Date.now() - 25 * 3600 * 1000) / 1000;
    await utimes(old, dayAgo, dayAgo);

    // One folder read: the old partial two levels down is out of reach.
    expect(await cleanPartials(root, { all: false, maxDirs: 1 })).toBe(0);
    expect(await cleanPartials(root, { all: false })).toBe(1);
    expect(await readdir(join(root, 'a', 'b'))).toEqual([]);
    expect(await cleanPartials(root, { all: true })).toBe(1);
    expect((await readdir(root)).sort()).toEqual(['.keep', 'a']);
    expect((await readdir(join(root, 'a'))).sort()).toEqual(['b', 'photo.part']);
  });
});

describe('startSweeping', () => {
  test('a running receiver sweeps stale partials again later, not only when it starts', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const root = await tempDir();
      const target = TargetDir.open(root);
      const sweeper = startSweeping(target, 10, 60_000);
      await sweeper.idle();
      // Planted after the start-up sweep, already a day old.
      const stale = join(root, partialName('late.bin'));
      await writeFile(stale, 'partial');
      const dayAgo = (Date.now() - 25 * 3600 * 1000) / 1000;
      await utimes(stale, dayAgo, dayAgo);
      expect(await readdir(root)).toEqual([partialName('late.bin')]);
      vi.advanceTimersByTime(60_000);
      await sweeper.idle();
      sweeper.stop();
      expect(await readdir(root)).toEqual([]);
      target.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
