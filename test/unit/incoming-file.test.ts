/**
 * IncomingFile: the one decision of what becomes of an accepted file's
 * bytes (named, kept for a resume, deleted), on a temporary folder.
 */
import { lstatSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { IncomingFile, type Destination } from '../../src/receiver/incoming-file.js';
import { partialName } from '../../src/receiver/partials.js';
import { TargetDir } from '../../src/receiver/target.js';

const made: string[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function destination(overwrite = false): Promise<{ dir: string; to: Destination }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-incoming-'));
  made.push(dir);
  const target = TargetDir.open(dir);
  // The root folder is not closed by the file: a fresh descriptor of it stands in for a subfolder.
  const folder = target.root;
  return { dir, to: { folder, name: 'a.bin', relativePath: 'a.bin', meta: { mode: 0o640, mtimeMs: 1_600_000_000_123 }, umask: 0o022, overwrite, fsync: false } };
}

async function filled(to: Destination, resumable: boolean, bytes = 'hello'): Promise<IncomingFile> {
  const file = await IncomingFile.onDisk(to, { resumable, limit: 1024 });
  file.sink.write(Buffer.from(bytes));
  return file;
}

describe('IncomingFile', () => {
  test("'name': the file appears under its name with its mode and mtime, and no temporary file is left", async () => {
    const { dir, to } = await destination();
    const file = await filled(to, true);
    await file.finish('name');
    expect(await readFile(join(dir, 'a.bin'), 'utf8')).toBe('hello');
    const info = lstatSync(join(dir, 'a.bin'));
    expect([info.mode & 0o777, info.mtimeMs]).toEqual([0o640, 1_600_000_000_123]);
    expect(await readdir(dir)).toEqual(['a.bin']);
  });

  test("'keep': a resumable file stays hidden as its partial, and the next open resumes from it", async () => {
    const { dir, to } = await destination();
    await (await filled(to, true)).finish('keep');
    expect(await readdir(dir)).toEqual([partialName('a.bin')]);
    const again = await IncomingFile.onDisk(to, { resumable: true, limit: 1024 });
    expect(again.offset).toBe(5);
    await again.finish('discard');
    expect(await readdir(dir)).toEqual([]);
  });

  test("'keep' of a stream deletes it: a stream cannot resume", async () => {
    const { dir, to } = await destination();
    await (await filled(to, false)).finish('keep');
    expect(await readdir(dir)).toEqual([]);
  });

  test('finish() happens once: a later outcome changes nothing', async () => {
    const { dir, to } = await destination();
    const file = await filled(to, true);
    await file.finish('name');
    await file.finish('discard');
    expect(await readdir(dir)).toEqual(['a.bin']);
    expect(file.open).toBe(false);
  });

  test('a name taken meanwhile: ERR_EXISTS, the other file is kept, and ours is deleted', async () => {
    const { dir, to } = await destination();
    const file = await filled(to, true);
    await writeFile(join(dir, 'a.bin'), 'theirs');
    await expect(file.finish('name')).rejects.toMatchObject({ code: 'ERR_EXISTS' });
    expect(await readFile(join(dir, 'a.bin'), 'utf8')).toBe('theirs');
    expect(await readdir(dir)).toEqual(['a.bin']);
  });

  test('--overwrite replaces the existing file', async () => {
    const { dir, to } = await destination(true);
    await writeFile(join(dir, 'a.bin'), 'theirs');
    await (await filled(to, true)).finish('name');
    expect(await readFile(join(dir, 'a.bin'), 'utf8')).toBe('hello');
  });
});
