/**
 * What a local user who can write inside --dir, and a sender who holds the
 * code, may plant on the receiver, and the modes files arrive with:
 *
 * - planted partials: `.ferry-<32 hex>.part` is resumed only when it is a
 *   regular file with one link, owned by the receiver's user, mode 0600,
 *   opened without following links; anything else is replaced, never
 *   written through;
 * - permission bits are the sender's mode less the receiver's umask (as cp
 *   and tar do for a normal user);
 * - an offered path whose first component is hidden (`.ssh/...`) is refused
 *   unless allowHidden; so is writing into an existing hidden folder this
 *   session did not make; a component named like ferry's temp files, always.
 *
 * The race against folder swaps is in local-user-race.test.ts (it mocks fs).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, send, type ReceiveOptions, type SendSummary } from '../src/index.js';
import { CLI, ferry } from './support/cli.js';
import { fingerprint, listing, pattern, tempDir, within, writeSample } from './support/files.js';
import { spawnJson, type JsonProcess } from './support/process.js';
import { snapshotTree } from './support/racer.js';

const KiB = 1024;
/** Over the 64 KiB eager limit: the file takes the ACCEPT (and resume) path. */
const BIG = 1024 * KiB;
const PREFIX = 256 * KiB;
/** Another user's uid and gid (nobody). */
const OTHER = 65534;

type Json = Record<string, unknown>;

/** The partial file name docs/protocol.md gives for relative path `p`: `.ferry-` + first 16 bytes of SHA-256(UTF-8 p), hex, + `.part`. */
function partialNameOf(p: string): string {
  return `.ferry-${createHash('sha256').update(Buffer.from(p, 'utf8')).digest('hex').slice(0, 32)}.part`;
}

/** Runs one receiver on `dst` (library, plain TCP) for one send of `files`; returns the sender's summary and the receiver's events. */
async function transfer(dst: string, files: string[], extra: Partial<ReceiveOptions> = {}): Promise<{ summary: SendSummary; events: Json[] }> {
  const events: Json[] = [];
  const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true, timeoutMs: 10_000, onEvent: (e) => void events.push(e as unknown as Json), ...extra });
  try {
    const summary = await within(send({ files, host: '127.0.0.1', port: rx.port, insecure: true, timeoutMs: 10_000 }), 15_000, 'the send');
    return { summary, events };
  } finally {
    await rx.close();
  }
}

/** What an inode holds, read through a descriptor the test kept: content, size, mtime, mode. */
function inodeState(fd: number): { bytes: number; sha256: string; mtimeMs: number; mode: number } {
  const st = fstatSync(fd);
  const buffer = Buffer.alloc(st.size);
  let at = 0;
  while (at < st.size) {
    const n = readSync(fd, buffer, at, st.size - at, at);
    if (n === 0) break;
    at += n;
  }
  return { ...fingerprint(buffer.subarray(0, at)), mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
}

/** The received file: a regular file with one link, owned by us, holding `content`. */
async function expectSaved(path: string, content: Buffer): Promise<import('node:fs').Stats> {
  const st = await lstat(path);
  expect(st.isFile()).toBe(true);
  expect(st.nlink).toBe(1);
  expect(st.uid).toBe(process.getuid!());
  expect(fingerprint(await readFile(path))).toEqual(fingerprint(content));
  return st;
}

/** An hour ago: young enough that a kept partial would be resumed. */
const recent = (): number => (Date.now() - 3600 * 1000) / 1000;

describe('planted partial files', () => {
  test('control: a partial as the receiver leaves it (regular, one link, ours, 0600) is resumed, so the name below is the one the receiver looks for', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', BIG);
    const partial = join(dst, partialNameOf('big.bin'));
    await writeFile(partial, file.content.subarray(0, PREFIX), { mode: 0o600 });
    await utimes(partial, recent(), recent());

    const { summary } = await transfer(dst, [file.path]);
    expect(summary.files[0]).toMatchObject({ code: 'OK', resumedFrom: PREFIX });
    await expectSaved(join(dst, 'big.bin'), file.content);
    expect(await listing(dst)).toEqual(['big.bin']);
  });

  test.each([['big.bin'], ['deep/er/big.bin']])('%s: a partial that is a hard link to a file outside --dir (holding the right prefix) is not written through: the outside file is unchanged', async (name) => {
    const src = await tempDir();
    const dst = await tempDir();
    const outside = await tempDir();
    const parts = name.split('/');
    await mkdir(join(src, ...parts.slice(0, -1)), { recursive: true });
    await mkdir(join(dst, ...parts.slice(0, -1)), { recursive: true });
    const file = await writeSample(join(src, ...parts.slice(0, -1)), parts.at(-1)!, BIG);
    const victim = join(outside, 'victim.bin');
    await writeFile(victim, file.content.subarray(0, PREFIX), { mode: 0o600 });
    await utimes(victim, recent(), recent());
    const partial = join(dst, ...parts.slice(0, -1), partialNameOf(name));
    await link(victim, partial);
    const before = snapshotTree(outside);

    const { summary } = await transfer(dst, [parts.length === 1 ? file.path : join(src, parts[0]!)]);
    const after = snapshotTree(outside);
    // The link count may drop (the planted name replaced); nothing else about the file may change.
    const { nlink: _b, ...victimBefore } = before['victim.bin']!;
    const { nlink: _a, ...victimAfter } = after['victim.bin']!;
    expect(victimAfter).toEqual(victimBefore);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    const st = await expectSaved(join(dst, name), file.content);
    expect(st.ino).not.toBe(before['victim.bin']!.ino);
    expect(summary.files.find((f) => f.name === name)).toMatchObject({ code: 'OK', resumedFrom: 0 });
    expect(await listing(join(dst, ...parts.slice(0, -1)))).toEqual([parts.at(-1)]);
  });

  test("a partial owned by another user (uid 65534, 0600, one link, the right prefix) is not reused: the file is the receiver's, a new inode", async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', BIG);
    const partial = join(dst, partialNameOf('big.bin'));
    await writeFile(partial, file.content.subarray(0, PREFIX), { mode: 0o600 });
    await chown(partial, OTHER, OTHER);
    await utimes(partial, recent(), recent());
    const planted = await stat(partial);
    const fd = openSync(partial, constants.O_RDONLY);
    try {
      const held = inodeState(fd);
      const { summary } = await transfer(dst, [file.path]);
      const st = await lstat(join(dst, 'big.bin'));
      expect({ uid: st.uid, sameInode: st.ino === planted.ino }).toEqual({ uid: process.getuid!(), sameInode: false });
      // Nothing was written through it either.
      expect(inodeState(fd)).toEqual(held);
      await expectSaved(join(dst, 'big.bin'), file.content);
      expect(summary.files[0]).toMatchObject({ code: 'OK', resumedFrom: 0 });
      expect(await listing(dst)).toEqual(['big.bin']);
    } finally {
      closeSync(fd);
    }
  });

  test('a partial with mode 0644 (ours, one link, the right prefix) is not reused, and nothing is written through it', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', BIG);
    const partial = join(dst, partialNameOf('big.bin'));
    await writeFile(partial, file.content.subarray(0, PREFIX));
    await chmod(partial, 0o644);
    await utimes(partial, recent(), recent());
    const planted = await stat(partial);
    const fd = openSync(partial, constants.O_RDONLY);
    try {
      const held = inodeState(fd);
      const { summary } = await transfer(dst, [file.path]);
      expect(inodeState(fd)).toEqual(held);
      const st = await expectSaved(join(dst, 'big.bin'), file.content);
      expect(st.ino).not.toBe(planted.ino);
      expect(summary.files[0]).toMatchObject({ code: 'OK', resumedFrom: 0 });
      expect(await listing(dst)).toEqual(['big.bin']);
    } finally {
      closeSync(fd);
    }
  });

  test('a partial that is a FIFO is replaced, not opened for writing: nothing goes into the pipe and the file arrives', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', BIG);
    const partial = join(dst, partialNameOf('big.bin'));
    execFileSync('mkfifo', ['-m', '600', partial]);
    // Our read end: a writer's open does not block on it, and what a writer wrote would wait in the pipe.
    const reader = openSync(partial, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const { summary } = await transfer(dst, [file.path]);
      expect(summary.files[0]).toMatchObject({ code: 'OK', resumedFrom: 0 });
      await expectSaved(join(dst, 'big.bin'), file.content);
      let inPipe = 0;
      try {
        inPipe = readSync(reader, Buffer.alloc(64 * KiB));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('EAGAIN');
      }
      expect(inPipe).toBe(0);
      expect(await listing(dst)).toEqual(['big.bin']);
    } finally {
      closeSync(reader);
    }
  });

  test.each([
    ['an outside file holding the right prefix', true],
    ['a missing outside file', false],
  ])('a partial that is a symlink to %s is replaced, not followed', async (_what, targetExists) => {
    const src = await tempDir();
    const dst = await tempDir();
    const outside = await tempDir();
    const file = await writeSample(src, 'big.bin', BIG);
    const target = join(outside, 'target.bin');
    if (targetExists) {
      await writeFile(target, file.content.subarray(0, PREFIX), { mode: 0o600 });
      await utimes(target, recent(), recent());
    }
    await symlink(target, join(dst, partialNameOf('big.bin')));
    const before = snapshotTree(outside);

    const { summary } = await transfer(dst, [file.path]);
    expect(summary.files[0]).toMatchObject({ code: 'OK', resumedFrom: 0 });
    await expectSaved(join(dst, 'big.bin'), file.content);
    expect(snapshotTree(outside)).toEqual(before);
    expect(await listing(dst)).toEqual(['big.bin']);
  });
});

describe("permission bits follow the receiver's umask", () => {
  const started: JsonProcess[] = [];
  afterEach(() => {
    for (const p of started.splice(0)) p.child.kill('SIGKILL');
  });

  /** `ferry receive --once --insecure` on loopback, started by a shell that set `umask` first. */
  async function receiverUnder(umask: string, dst: string): Promise<JsonProcess & { port: number }> {
    const args = ['receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--once', '--insecure'];
    const proc = spawnJson('sh', ['-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, CLI, ...args], process.env);
    started.push(proc);
    const listening = await proc.waitFor((e) => e.event === 'listening');
    return Object.assign(proc, { port: listening.port as number });
  }

  test.each([
    ['022', { 0o777: 0o755, 0o666: 0o644, 0o755: 0o755 }, 0o755],
    ['077', { 0o777: 0o700, 0o666: 0o600, 0o755: 0o700 }, 0o700],
  ] as const)('umask %s: files and folders arrive with the sent mode less the umask, small and large files alike', async (umask, fileModes, dirMode) => {
    const src = await tempDir();
    const dst = await tempDir();
    const root = join(src, 'set');
    await mkdir(join(root, 'inner'), { recursive: true });
    const expected: Record<string, number> = { set: dirMode, 'set/inner': dirMode };
    for (const [sent, arrives] of Object.entries(fileModes)) {
      const octal = Number(sent).toString(8);
      for (const [kind, size, dir] of [['small', 100, root], ['large', 100 * KiB, join(root, 'inner')]] as const) {
        const name = `${kind}-${octal}.bin`;
        await writeFile(join(dir, name), pattern(size, Number(sent)));
        await chmod(join(dir, name), Number(sent));
        expected[dir === root ? `set/${name}` : `set/inner/${name}`] = arrives;
      }
    }
    await chmod(join(root, 'inner'), 0o777);
    await chmod(root, 0o777);

    const rx = await receiverUnder(umask, dst);
    const tx = ferry(['send', root, '--to', `127.0.0.1:${rx.port}`, '--insecure', '--json']);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(await rx.exit(5000), rx.stderr()).toBe(0);

    const arrived = snapshotTree(dst);
    const modes = Object.fromEntries(Object.keys(expected).map((k) => [k, (arrived[k]?.mode ?? -1).toString(8)]));
    expect(modes).toEqual(Object.fromEntries(Object.entries(expected).map(([k, m]) => [k, m.toString(8)])));
  });
});

/** Receive options with allowHidden, an option that lands with the receiver rework. */
function hidden(allow: boolean): Partial<ReceiveOptions> {
  if (!allow) return {};
  const options: Partial<ReceiveOptions> = {
    allowHidden: true,
  };
  return options;
}

/** Makes `files` (relative path -> size) under `root`. */
async function plant(root: string, files: Record<string, number>): Promise<Map<string, Buffer>> {
  const contents = new Map<string, Buffer>();
  let seed = 50;
  for (const [rel, size] of Object.entries(files)) {
    const path = join(root, rel);
    await mkdir(join(path, '..'), { recursive: true });
    const content = pattern(size, seed++);
    await writeFile(path, content);
    contents.set(rel, content);
  }
  return contents;
}

/** Every entry under `dir` (not `dir` itself), as relative paths. */
const everything = (dir: string): string[] => Object.keys(snapshotTree(dir)).filter((k) => k !== '.');

describe('what a code holder may plant: hidden names', () => {
  /** The three sources: what `send` is given (paths under src) and the files they hold (relative to src). */
  const HIDDEN_SOURCES: Array<[string, string[], Record<string, number>]> = [
    ['.ssh/authorized_keys (and a large .ssh/id_big)', ['.ssh'], { '.ssh/authorized_keys': 100, '.ssh/id_big': 100 * KiB }],
    ['.bashrc', ['.bashrc'], { '.bashrc': 200 }],
    ['.git/hooks/pre-commit', ['.git'], { '.git/hooks/pre-commit': 300 }],
  ];

  test.each(HIDDEN_SOURCES)('%s: a hidden first component is refused with ERR_BAD_NAME (exit 4) and leaves nothing', async (_label, paths, files) => {
    const src = await tempDir();
    const dst = await tempDir();
    await plant(src, files);
    const { summary } = await transfer(dst, paths.map((p) => join(src, p)));
    expect(summary.exitCode).toBe(4);
    expect(summary.files.length).toBeGreaterThan(0);
    for (const f of summary.files) expect(f.code, f.name).toBe('ERR_BAD_NAME');
    expect(everything(dst)).toEqual([]);
  });

  test.each(HIDDEN_SOURCES)('%s: with allowHidden it arrives', async (_label, paths, files) => {
    const src = await tempDir();
    const dst = await tempDir();
    const contents = await plant(src, files);
    const { summary } = await transfer(
      dst,
      paths.map((p) => join(src, p)),
      hidden(true),
    );
    expect(summary.exitCode).toBe(0);
    for (const [rel, content] of contents) expect(fingerprint(await readFile(join(dst, rel))), rel).toEqual(fingerprint(content));
  });

  test('hidden components below a folder this session makes arrive: proj/.gitignore, proj/.git/HEAD, a large proj/.git/objects/pack.bin', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const contents = await plant(src, { 'proj/.gitignore': 20, 'proj/.git/HEAD': 23, 'proj/.git/objects/pack.bin': 100 * KiB, 'proj/src/main.c': 500 });
    const { summary } = await transfer(dst, [join(src, 'proj')]);
    expect(summary.files.filter((f) => f.code !== 'OK')).toEqual([]);
    expect(summary.exitCode).toBe(0);
    for (const [rel, content] of contents) expect(fingerprint(await readFile(join(dst, rel))), rel).toEqual(fingerprint(content));
  });

  test('writing into an existing hidden folder the session did not make (proj/.git) is refused with ERR_BAD_NAME and leaves nothing there; the rest arrives', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    await mkdir(join(dst, 'proj', '.git'), { recursive: true });
    await writeFile(join(dst, 'proj', '.git', 'config'), '[core]\n');
    const gitBefore = snapshotTree(join(dst, 'proj', '.git'));
    const contents = await plant(src, { 'proj/.git/hooks/pre-commit': 300, 'proj/.git/big.pack': 100 * KiB, 'proj/readme.txt': 40 });

    const { summary } = await transfer(dst, [join(src, 'proj')]);
    const codes = Object.fromEntries(summary.files.map((f) => [f.name, f.code]));
    expect(codes).toMatchObject({ 'proj/.git/hooks/pre-commit': 'ERR_BAD_NAME', 'proj/.git/big.pack': 'ERR_BAD_NAME', 'proj/readme.txt': 'OK' });
    expect(summary.exitCode).toBe(4);
    expect(snapshotTree(join(dst, 'proj', '.git'))).toEqual(gitBefore);
    expect(fingerprint(await readFile(join(dst, 'proj', 'readme.txt')))).toEqual(fingerprint(contents.get('proj/readme.txt')!));
    expect(everything(dst).sort()).toEqual(['proj', 'proj/.git', 'proj/.git/config', 'proj/readme.txt']);
  });

  test('with allowHidden, writing into an existing proj/.git is allowed', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    await mkdir(join(dst, 'proj', '.git'), { recursive: true });
    await writeFile(join(dst, 'proj', '.git', 'config'), '[core]\n');
    const contents = await plant(src, { 'proj/.git/hooks/pre-commit': 300, 'proj/.git/big.pack': 100 * KiB });
    const { summary } = await transfer(dst, [join(src, 'proj')], hidden(true));
    expect(summary.files.filter((f) => f.code !== 'OK')).toEqual([]);
    for (const [rel, content] of contents) expect(fingerprint(await readFile(join(dst, rel))), rel).toEqual(fingerprint(content));
  });

  test.each([false, true])("a component named like ferry's temp files (.ferry-*.part) is always refused (allowHidden %s), and leaves nothing", async (allow) => {
    const src = await tempDir();
    const dst = await tempDir();
    // The partial name of proj/victim.bin, with content: a planted resume if it were taken.
    const planted = partialNameOf('proj/victim.bin');
    const top = partialNameOf('top.bin');
    await plant(src, {
      [top]: 100 * KiB,
      [`proj/${planted}`]: 100 * KiB,
      'proj/.ferry-x.part/inner.txt': 10,
      'proj/.ferry-0123456789abcdef0123456789abcdef.part': 10,
      'proj/ok.txt': 10,
    });
    const { summary } = await transfer(dst, [join(src, top), join(src, 'proj')], hidden(allow));
    const codes = Object.fromEntries(summary.files.map((f) => [f.name, f.code]));
    expect(codes).toMatchObject({
      [top]: 'ERR_BAD_NAME',
      [`proj/${planted}`]: 'ERR_BAD_NAME',
      'proj/.ferry-x.part/inner.txt': 'ERR_BAD_NAME',
      'proj/.ferry-x.part': 'ERR_BAD_NAME',
      'proj/.ferry-0123456789abcdef0123456789abcdef.part': 'ERR_BAD_NAME',
      'proj/ok.txt': 'OK',
    });
    expect(summary.exitCode).toBe(4);
    expect(everything(dst).sort()).toEqual(['proj', 'proj/ok.txt']);
  });

  test('CLI: ferry send .bashrc to a receiver without --allow-hidden exits 4 with ERR_BAD_NAME; with --allow-hidden it arrives', async () => {
    const src = await tempDir();
    const file = await writeSample(src, '.bashrc', 200);
    for (const allow of [false, true]) {
      const dst = await tempDir();
      const rx = ferry(['receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--once', '--insecure', ...(allow ? ['--allow-hidden'] : [])]);
      const port = (await rx.waitFor((e) => e.event === 'listening')).port as number;
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${port}`, '--insecure', '--json']);
      const code = await tx.exit(15_000);
      expect(await rx.exit(5000)).toBe(code);
      if (allow) {
        expect(code, tx.stderr()).toBe(0);
        expect(fingerprint(await readFile(join(dst, '.bashrc')))).toEqual(fingerprint(file.content));
      } else {
        expect(code, tx.stderr()).toBe(4);
        expect(tx.events.filter((e) => e.event === 'error').map((e) => e.code)).toContain('ERR_BAD_NAME');
        expect(await listing(dst)).toEqual([]);
      }
    }
  });
});
