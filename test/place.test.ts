/**
 * Naming a file into place and setting its metadata (src/receiver/place.ts),
 * on real files: mtimes land on their exact millisecond, and a file system
 * without hard links still gets every file, small or large.
 */
import { closeSync, openSync, statSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { applyMeta } from '../src/receiver/place.js';
import { receive, send } from '../src/index.js';
import { pattern, tempDir } from './support/files.js';

/** A switch the fs mock below reads: link() then fails as on vfat (EPERM). */
const noHardLinks = vi.hoisted(() => ({ on: false }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const linkSync = (from: import('node:fs').PathLike, to: import('node:fs').PathLike): void => {
    if (noHardLinks.on) throw Object.assign(new Error(`EPERM: operation not permitted, link '${String(from)}'`), { code: 'EPERM' });
    real.linkSync(from, to);
  };
  return { ...real, default: { ...real, linkSync }, linkSync };
});

describe('mtimes', () => {
  test.each([1_600_000_000_123, 1_600_000_000_999, 1_700_000_000_000, 0, -1, -999, -1_000_000_000_000])('%d ms reads back as exactly that many milliseconds', async (ms) => {
    const dir = await tempDir();
    const path = join(dir, 'f');
    await writeFile(path, 'x');
    const fd = openSync(path, 'r+');
    try {
      applyMeta(fd, { mode: 0o644, mtimeMs: ms }, 0o022);
    } finally {
      closeSync(fd);
    }
    expect(statSync(path, { bigint: true }).mtimeNs).toBe(BigInt(ms) * 1_000_000n);
  });
});

describe('a file system without hard links', () => {
  test('small (eager) and large files alike are named by rename, verified, and no temp file is left', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const small = pattern(4096, 3);
    const large = pattern(300 * 1024, 4);
    await writeFile(join(src, 'small.bin'), small);
    await writeFile(join(src, 'large.bin'), large);
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true });
    noHardLinks.on = true;
    try {
      const summary = await send({ files: [join(src, 'small.bin'), join(src, 'large.bin')], host: '127.0.0.1', port: rx.port, insecure: true });
      expect(summary.files.map((f) => f.code)).toEqual(['OK', 'OK']);
    } finally {
      noHardLinks.on = false;
      await rx.close();
    }
    expect(await readFile(join(dst, 'small.bin'))).toEqual(small);
    expect(await readFile(join(dst, 'large.bin'))).toEqual(large);
    expect((await readdir(dst)).sort()).toEqual(['large.bin', 'small.bin']);
  });

  test('without link(), an existing name is still refused and kept', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    await writeFile(join(src, 'a.txt'), 'new');
    await writeFile(join(dst, 'a.txt'), 'old');
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true });
    noHardLinks.on = true;
    try {
      const summary = await send({ files: [join(src, 'a.txt')], host: '127.0.0.1', port: rx.port, insecure: true });
      expect(summary.files[0]!.code).toBe('ERR_EXISTS');
    } finally {
      noHardLinks.on = false;
      await rx.close();
    }
    expect(await readFile(join(dst, 'a.txt'), 'utf8')).toBe('old');
  });
});
