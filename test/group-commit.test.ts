/**
 * Group commit (src/receiver/group-commit.ts): small files are flushed many
 * at a time, but no file is named before its data is flushed, and no
 * VERDICT goes out before its file's data and name are both on the disk.
 */
import { constants, fstatSync, lstatSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test, vi } from 'vitest';
import { receive, send } from '../src/index.js';
import { GroupCommit, type Flusher, type Written } from '../src/receiver/group-commit.js';
import { cleanPartials, uniqueTempName } from '../src/receiver/partials.js';
import { TargetDir } from '../src/receiver/target.js';
import { CLI, TEST_CODE } from './support/cli.js';
import { pattern, tempDir, within } from './support/files.js';
import { spawnJson } from './support/process.js';

/** While set, every fdatasync and fsync of this process goes through it (a slow disk that also watches the order). */
const disk = vi.hoisted(() => ({ hook: null as null | { data(fd: number, done: () => void): void; folder(fd: number, done: () => void): void } }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  type Callback = (err: NodeJS.ErrnoException | null) => void;
  const fdatasync = (fd: number, callback: Callback): void => {
    if (!disk.hook) return real.fdatasync(fd, callback);
    disk.hook.data(fd, () => real.fdatasync(fd, callback));
  };
  const fsync = (fd: number, callback: Callback): void => {
    if (!disk.hook) return real.fsync(fd, callback);
    disk.hook.folder(fd, () => real.fsync(fd, callback));
  };
  return { ...real, default: { ...real, fdatasync, fsync }, fdatasync, fsync };
});

const TEMP = /^\.ferry-[0-9a-f]{32}\.part$/;
/** 2001, in seconds. */
const PAST_S = Date.UTC(2001, 4, 5) / 1000;

/** The names in the folder open as `fd`, ferry's temporary files apart. */
function namesIn(fd: number): { named: string[]; temps: string[] } {
  const all = readdirSync(`/proc/self/fd/${fd}`);
  return { named: all.filter((n) => !TEMP.test(n)), temps: all.filter((n) => TEMP.test(n)) };
}

describe('over a real session, with a slow disk', () => {
  test('every VERDICT comes after its file was flushed, named, and its folder flushed; the files of a batch are flushed together', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const FILES = 120;
    await mkdir(join(src, 'tree'));
    for (let i = 0; i < FILES; i++) await writeFile(join(src, 'tree', `f${i}.bin`), pattern(2000 + i, i + 1));

    const flushedInodes = new Set<number>();
    const durable = new Set<string>();
    const violations: string[] = [];
    let dataInFlight = 0;
    let mostDataInFlight = 0;
    let folderFlushes = 0;
    disk.hook = {
      data(fd, done) {
        const ino = fstatSync(fd).ino;
        dataInFlight++;
        mostDataInFlight = Math.max(mostDataInFlight, dataInFlight);
        // A slow disk: the flush takes a few milliseconds.
        setTimeout(() => {
          done();
          dataInFlight--;
          flushedInodes.add(ino);
        }, 3);
      },
      folder(fd, done) {
        folderFlushes++;
        // What this flush makes last: the names there when it starts.
        const { named } = namesIn(fd);
        for (const name of named) {
          const ino = lstatSync(`/proc/self/fd/${fd}/${name}`).ino;
          if (!flushedInodes.has(ino)) violations.push(`${name} was named before its data was flushed`);
        }
        setTimeout(() => {
          done();
          for (const name of named) durable.add(name);
        }, 3);
      },
    };
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true });
    try {
      const summary = await within(
        send({
          files: [join(src, 'tree')],
          host: '127.0.0.1',
          port: rx.port,
          insecure: true,
          onEvent: (e) => {
            if (e.event === 'sent' && e.name !== 'tree' && !durable.has(e.name.slice('tree/'.length))) violations.push(`the verdict of ${e.name} came before its name was flushed`);
          },
        }),
        30_000,
        'the send',
      );
      expect(summary.exitCode).toBe(0);
    } finally {
      disk.hook = null;
      await rx.close();
    }
    expect(violations).toEqual([]);
    expect(durable.size).toBe(FILES);
    // Batched: several flushes in flight at once, and far fewer folder flushes than files.
    expect(mostDataInFlight).toBeGreaterThan(1);
    expect(folderFlushes).toBeGreaterThan(0);
    expect(folderFlushes).toBeLessThan(FILES / 4);
    const names = (await readdir(join(dst, 'tree'))).sort();
    expect(names).toHaveLength(FILES);
    expect(names.some((n) => TEMP.test(n))).toBe(false);
    expect(await readFile(join(dst, 'tree', 'f7.bin'))).toEqual(pattern(2007, 8));
  });

  test('while the data flush has not completed, only temporary files exist and the sender has no verdict', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    for (let i = 0; i < 5; i++) {
      await writeFile(join(src, `s${i}.txt`), `small ${i}`);
      // Years old: the temporary files carry this mtime while they wait for the flush.
      await utimes(join(src, `s${i}.txt`), PAST_S, PAST_S);
    }
    const held: Array<() => void> = [];
    let firstHeld!: () => void;
    const someHeld = new Promise<void>((resolve) => (firstHeld = resolve));
    disk.hook = {
      data(_fd, done) {
        held.push(done);
        firstHeld();
      },
      folder: (_fd, done) => done(),
    };
    const verdicts: string[] = [];
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true });
    try {
      const sending = send({
        files: [0, 1, 2, 3, 4].map((i) => join(src, `s${i}.txt`)),
        host: '127.0.0.1',
        port: rx.port,
        insecure: true,
        onEvent: (e) => void (e.event === 'sent' && verdicts.push(e.name)),
      });
      await within(someHeld, 10_000, 'the first flush');
      // Each held flush is a file on the disk (more may arrive while the folder is read).
      const heldNow = held.length;
      // What a crash now would leave: temporary files only, no name.
      const now = await readdir(dst);
      expect(now.filter((n) => !TEMP.test(n))).toEqual([]);
      expect(now.filter((n) => TEMP.test(n)).length).toBeGreaterThanOrEqual(heldNow);
      expect(verdicts).toEqual([]);
      // The receiver's sweep of stale partials (at start, then hourly) must not take them for old ones.
      expect(await cleanPartials(dst, { all: false })).toBe(0);
      // The disk catches up: every flush held so far and after completes.
      disk.hook = { data: (_fd, done) => done(), folder: (_fd, done) => done() };
      for (const done of held.splice(0)) done();
      const summary = await within(sending, 10_000, 'the send');
      expect(summary.exitCode).toBe(0);
    } finally {
      disk.hook = null;
      await rx.close();
    }
    expect((await readdir(dst)).sort()).toEqual(['s0.txt', 's1.txt', 's2.txt', 's3.txt', 's4.txt']);
  });
});

describe('a crash', () => {
  test('a receiver killed at a flush leaves only temporary files of the batch being flushed: every named file had its data flushed', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const log = join(await tempDir(), 'synced.log');
    await writeFile(log, '');
    await mkdir(join(src, 'tree'));
    for (let i = 0; i < 60; i++) await writeFile(join(src, 'tree', `f${i}.bin`), pattern(1000, i + 1));
    const preload = fileURLToPath(new URL('./support/crash-at-flush.mjs', import.meta.url));
    const rx = spawnJson(process.execPath, ['--import', preload, CLI, 'receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--code', TEST_CODE], {
      ...process.env,
      FERRY_TEST_SYNCED_LOG: log,
      FERRY_TEST_KILL_AT_FLUSH: '25',
    });
    const listening = await rx.waitFor((e) => e.event === 'listening', 10_000);
    const tx = spawnJson(process.execPath, [CLI, 'send', join(src, 'tree'), '--to', `127.0.0.1:${listening.port as number}`, '--json', '--retries', '0'], { ...process.env, FERRY_CODE: TEST_CODE });
    expect(await rx.exit(20_000)).toBe(128 + 9);
    expect(await tx.exit(20_000)).not.toBe(0);
    const synced = new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean).map(Number));
    const all = await readdir(join(dst, 'tree'));
    const named = all.filter((n) => !TEMP.test(n));
    const temps = all.filter((n) => TEMP.test(n));
    // The crash came before a flush completed: that file is there, but only under its temporary name.
    expect(temps.length).toBeGreaterThan(0);
    for (const name of named) expect(synced.has(lstatSync(join(dst, 'tree', name)).ino), `${name} is named but was never flushed`).toBe(true);
    for (const name of named) expect(await readFile(join(dst, 'tree', name))).toEqual(pattern(1000, Number(name.slice(1, -4)) + 1));
  });
});

describe('GroupCommit', () => {
  async function written(dir: string, target: TargetDir, name: string): Promise<Written> {
    const temp = uniqueTempName();
    const fd = openSync(join(dir, temp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    return { folder: target.root, fd, temp, name, overwrite: false };
  }

  /** A disk whose flushes wait until the test lets them go. */
  function heldDisk(): Flusher & { data: ReturnType<typeof vi.fn>; folder: ReturnType<typeof vi.fn>; release(): void } {
    let gates: Array<() => void> = [];
    const wait = (): Promise<void> => new Promise((resolve) => gates.push(resolve));
    return {
      data: vi.fn(wait),
      folder: vi.fn(wait),
      release() {
        const now = gates;
        gates = [];
        for (const go of now) go();
      },
    };
  }

  test('files added while a batch commits form the next batch: one folder flush for all of them', async () => {
    const dir = await tempDir();
    const target = TargetDir.open(dir);
    const flusher = heldDisk();
    const commits = new GroupCommit(flusher);
    try {
      const first = commits.add(await written(dir, target, 'a'));
      await vi.waitFor(() => expect(flusher.data).toHaveBeenCalledTimes(1), { timeout: 5000 });
      const rest = ['b', 'c', 'd'].map(async (n) => commits.add(await written(dir, target, n)));
      await Promise.all(rest.map(() => Promise.resolve()));
      flusher.release(); // a's data
      await vi.waitFor(() => expect(flusher.folder).toHaveBeenCalledTimes(1), { timeout: 5000 });
      expect(namesIn(target.root.fd).named).toEqual(['a']);
      flusher.release(); // a's folder
      await within(first, 5000, 'the first batch');
      await vi.waitFor(() => expect(flusher.data).toHaveBeenCalledTimes(4), { timeout: 5000 });
      // b, c and d are one batch: nothing named until all three are flushed.
      expect(namesIn(target.root.fd).named).toEqual(['a']);
      flusher.release();
      await vi.waitFor(() => expect(flusher.folder).toHaveBeenCalledTimes(2), { timeout: 5000 });
      flusher.release();
      await within(Promise.all(await Promise.all(rest)), 5000, 'the second batch');
      expect(namesIn(target.root.fd)).toEqual({ named: ['a', 'b', 'c', 'd'], temps: [] });
    } finally {
      target.close();
    }
  });

  test('a file whose flush fails is not named and its temp file is deleted; the others of its batch are saved', async () => {
    const dir = await tempDir();
    const target = TargetDir.open(dir);
    const failing = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    const fds: number[] = [];
    const commits = new GroupCommit({
      data: (fd) => (fd === fds[1] ? Promise.reject(failing) : Promise.resolve()),
      folder: () => Promise.resolve(),
    });
    try {
      const files = await Promise.all(['x', 'y', 'z'].map((n) => written(dir, target, n)));
      fds.push(...files.map((f) => f.fd));
      const results = await within(Promise.allSettled(files.map((f) => commits.add(f))), 5000, 'the batch');
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(namesIn(target.root.fd)).toEqual({ named: ['x', 'z'], temps: [] });
    } finally {
      target.close();
    }
  });

  test('a folder flush that fails fails the verdicts of the files named there (ERR_IO)', async () => {
    const dir = await tempDir();
    const target = TargetDir.open(dir);
    const commits = new GroupCommit({ data: () => Promise.resolve(), folder: () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) });
    try {
      const results = await within(Promise.allSettled([commits.add(await written(dir, target, 'p'))]), 5000, 'the batch');
      expect(results[0]!.status).toBe('rejected');
    } finally {
      target.close();
    }
  });
});
