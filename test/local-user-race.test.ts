/**
 * A local user who can write inside --dir swaps the receiver's folders for
 * symlinks to a folder outside while a tree arrives (rsync CVE-2024-12747
 * class). Whatever the race does, nothing outside --dir may be created,
 * linked, chmod'ed or utimes'ed, every file reported `received` is inside
 * --dir with the right content, and the receiver does not crash. Refusals
 * are fine.
 *
 * The race is made deterministic by mocking node:fs and node:fs/promises
 * (test/support/racer.ts): while the racer is armed, every fs call of the
 * in-process receiver first toggles the world (odd calls: every folder under
 * --dir renamed aside and a symlink to OUTSIDE in its place; even calls:
 * put back). The sender is a child process, so the calls the hook sees are
 * the receiver's alone. A second test runs the racer as a child process
 * against a CLI receiver (not deterministic: it may miss a window).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { receive, type ReceiveOptions } from '../src/index.js';
import { ferry, receiver } from './support/cli.js';
import { fingerprint, pattern, tempDir, within } from './support/files.js';
import { spawnJson } from './support/process.js';
import { MOCKED, RACER_SCRIPT, armRacer, disarmRacer, racerArmed, realFs, snapshotTree, type RacerStats } from './support/racer.js';

vi.mock('node:fs', async (importOriginal) => {
  const { mockFs } = await import('./support/racer.js');
  return mockFs(await importOriginal<typeof import('node:fs')>());
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const { mockFsPromises } = await import('./support/racer.js');
  return mockFsPromises(await importOriginal<typeof import('node:fs/promises')>());
});

const KiB = 1024;
/** Whole seconds in 2001, so a utimes through a link shows. */
const PAST_S = Date.UTC(2001, 4, 5, 6, 7, 8) / 1000;

type Json = Record<string, unknown>;

afterEach(() => {
  if (racerArmed()) disarmRacer();
});

/**
 * tree/                         0755
 *   top.bin       70 KiB        (accepted: over 64 KiB)
 *   note.txt      100 B         (eager)
 *   a/            0755
 *     s.txt       4 KiB
 *     b/          0700
 *       big.bin   200 KiB
 *       tiny.txt  10 B
 *   c/            0755
 *     mid.bin     100 KiB
 *   d/e/f/        0755
 *     deep.txt    1 KiB
 *   empty/        0755
 * Every entry gets its own old mtime.
 */
function makeTree(parent: string, name = 'tree'): { root: string; files: Map<string, Buffer> } {
  const root = join(parent, name);
  const dirs: Array<[string, number]> = [
    ['', 0o755],
    ['a', 0o755],
    ['a/b', 0o700],
    ['c', 0o755],
    ['d', 0o755],
    ['d/e', 0o755],
    ['d/e/f', 0o755],
    ['empty', 0o755],
  ];
  const files: Array<[string, number]> = [
    ['top.bin', 70 * KiB],
    ['note.txt', 100],
    ['a/s.txt', 4 * KiB],
    ['a/b/big.bin', 200 * KiB],
    ['a/b/tiny.txt', 10],
    ['c/mid.bin', 100 * KiB],
    ['d/e/f/deep.txt', KiB],
  ];
  const contents = new Map<string, Buffer>();
  for (const [dir] of dirs) realFs.mkdirSync(join(root, dir), { recursive: true });
  let i = 0;
  for (const [file, size] of files) {
    const content = pattern(size, 300 + i);
    realFs.writeFileSync(join(root, file), content, { mode: 0o644 });
    const t = PAST_S + 3600 * ++i;
    realFs.utimesSync(join(root, file), t, t);
    contents.set(`${name}/${file}`, content);
  }
  for (const [dir, mode] of [...dirs].reverse()) {
    realFs.chmodSync(join(root, dir), mode);
    const t = PAST_S + 3600 * ++i;
    realFs.utimesSync(join(root, dir), t, t);
  }
  return { root, files: contents };
}

/**
 * The folder the symlinks point to: its own mode and an old mtime, a file,
 * and folders named like the tree's (`a`, `a/b`, `c`), so that a receiver
 * that follows a link finds folders to write into.
 */
function makeOutside(parent: string): string {
  const outside = join(parent, 'outside');
  for (const dir of ['', 'a', 'a/b', 'c']) realFs.mkdirSync(join(outside, dir), { recursive: true });
  realFs.writeFileSync(join(outside, 'keep.txt'), 'outside, keep me\n', { mode: 0o640 });
  realFs.writeFileSync(join(outside, 'a', 'b', 'other.bin'), pattern(1000, 9));
  let t = PAST_S - 86_400;
  for (const path of ['keep.txt', 'a/b/other.bin', 'a/b', 'a', 'c', '']) {
    realFs.chmodSync(join(outside, path), path === '' ? 0o750 : path.endsWith('.txt') || path.endsWith('.bin') ? 0o640 : 0o711);
    realFs.utimesSync(join(outside, path), t, t);
    t -= 3600;
  }
  return outside;
}

/** Differences between two snapshots, one line each: what leaked. */
function changes(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = JSON.stringify(before[key]);
    const b = JSON.stringify(after[key]);
    if (a !== b) out.push(`${key}: ${a ?? 'absent'} -> ${b ?? 'absent'}`);
  }
  return out.sort();
}

/** Each `received` file must be a regular file whose real path is under realpath(dst), holding what was sent. */
/**
 * Where `name` ended up when a folder on its way was renamed aside by the
 * racer and could not be put back (the receiver made a new folder of that
 * name meanwhile): the same relative path with `.moved-N` on some folders.
 * The racer moved it there by its own hand, inside --dir; ferry followed no link.
 */
function movedCopy(dst: string, name: string): string | undefined {
  const parts = name.split('/');
  const search = (dir: string, i: number): string | undefined => {
    if (i === parts.length - 1) {
      const path = join(dir, parts[i]!);
      return realFs.existsSync(path) ? path : undefined;
    }
    for (const entry of realFs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      if (entry.name !== parts[i] && entry.name.replace(/\.moved-\d+$/, '') !== parts[i]) continue;
      const found = search(join(dir, entry.name), i + 1);
      if (found) return found;
    }
    return undefined;
  };
  return search(dst, 0);
}

function checkReceived(dst: string, events: Json[], files: Map<string, Buffer>, options: { allowMoved?: boolean } = {}): string[] {
  const realDst = realFs.realpathSync(dst);
  const problems: string[] = [];
  for (const e of events.filter((x) => x.event === 'received')) {
    const name = e.name as string;
    const exact = join(dst, name);
    const path = !realFs.existsSync(exact) && options.allowMoved ? (movedCopy(dst, name) ?? exact) : exact;
    let real: string;
    try {
      real = realFs.realpathSync(path);
    } catch (err) {
      problems.push(`${name}: reported received, but ${path} is ${(err as NodeJS.ErrnoException).code}`);
      continue;
    }
    if (!real.startsWith(`${realDst}/`)) {
      problems.push(`${name}: reported received, but it is at ${real}, outside --dir`);
      continue;
    }
    const st = realFs.lstatSync(real);
    if (e.directory) {
      if (!st.isDirectory()) problems.push(`${name}: reported as a folder, is not one`);
      continue;
    }
    const sent = files.get(name);
    if (!st.isFile() || !sent) {
      problems.push(`${name}: not a regular file that was sent`);
      continue;
    }
    const got = fingerprint(realFs.readFileSync(real));
    if (JSON.stringify(got) !== JSON.stringify(fingerprint(sent))) problems.push(`${name}: content differs`);
  }
  return problems;
}

/** Nothing in --dir may be a symlink once the racer has put its own back: the receiver made none. */
function symlinksIn(dst: string): string[] {
  return Object.entries(snapshotTree(dst))
    .filter(([, e]) => e.type === 'symlink')
    .map(([k]) => k);
}

describe('a local user swaps folders in --dir for symlinks while a tree arrives', () => {
  test('the mocks reach what the receiver imports (or the race below would prove nothing)', async () => {
    const fs = await import('node:fs');
    const fsp = await import('node:fs/promises');
    expect((fs as unknown as Record<symbol, unknown>)[MOCKED]).toBe(true);
    expect((fsp as unknown as Record<symbol, unknown>)[MOCKED]).toBe(true);
    // The racer's own fs is the real one.
    expect((realFs as unknown as Record<symbol, unknown>)[MOCKED]).toBeUndefined();
  });

  test('the mocked fs carries a whole tree transfer out faithfully when the racer has nothing to swap', async () => {
    const base = await tempDir('ferry-race-');
    const src = join(base, 'src');
    const dst = join(base, 'inbox');
    const idle = join(base, 'idle');
    for (const d of [src, dst, idle]) realFs.mkdirSync(d);
    const { root, files } = makeTree(src);
    const events: Json[] = [];
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, insecure: true, once: true, timeoutMs: 10_000, onEvent: (e) => void events.push(e as unknown as Json) });
    // Armed on an empty folder elsewhere: every call goes through the mocks' immediate paths, nothing is swapped.
    armRacer(idle, base);
    let stats: RacerStats;
    try {
      const tx = ferry(['send', root, '--to', `127.0.0.1:${rx.port}`, '--insecure', '--json']);
      expect(await tx.exit(20_000), tx.stderr()).toBe(0);
      expect(await within(rx.done, 10_000, 'the receiver session')).toBe(0);
    } finally {
      stats = disarmRacer();
      await rx.close();
    }
    expect(stats.calls).toBeGreaterThan(10);
    expect(stats.swaps).toBe(0);
    expect(events.filter((e) => e.event === 'received' && !e.directory).map((e) => e.name).sort()).toEqual([...files.keys()].sort());
    expect(checkReceived(dst, events, files)).toEqual([]);
  });

  test('the racer can be beaten: a descriptor-relative writer (through /proc/self/fd) never touches the outside folder', async () => {
    const fsp = await import('node:fs/promises');
    const { constants: c } = await import('node:fs');
    const base = await tempDir('ferry-race-');
    const dst = join(base, 'inbox');
    realFs.mkdirSync(join(dst, 'a'), { recursive: true });
    const outside = makeOutside(base);
    const before = snapshotTree(outside);
    const dirFlags = c.O_RDONLY | c.O_DIRECTORY | c.O_NOFOLLOW;
    armRacer(dst, outside);
    const written: string[] = [];
    try {
      const rootHandle = await fsp.open(dst, dirFlags);
      for (let i = 0; i < 6; i++) {
        // Reach a/ from the root's descriptor; a symlink in its place is refused (ELOOP), never followed.
        const a = await fsp.open(`/proc/self/fd/${rootHandle.fd}/a`, dirFlags).catch((e: NodeJS.ErrnoException) => e);
        if (a instanceof Error) {
          expect(a.code).toBe('ELOOP');
          continue;
        }
        const name = `f${i}.txt`;
        const file = await fsp.open(`/proc/self/fd/${a.fd}/${name}`, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
        await file.write(Buffer.from(`file ${i}\n`));
        await file.chmod(0o644);
        await file.utimes(PAST_S, PAST_S);
        await file.close();
        await fsp.utimes(`/proc/self/fd/${a.fd}`, PAST_S, PAST_S);
        await a.close();
        written.push(name);
      }
      await rootHandle.close();
    } finally {
      disarmRacer();
    }
    expect(written.length).toBeGreaterThan(0);
    expect(changes(before, snapshotTree(outside))).toEqual([]);
    for (const name of written) expect(realFs.readFileSync(join(dst, 'a', name), 'utf8')).toMatch(/^file \d\n$/);
  });

  test.each([1, 2] as const)('deterministic (first swap before call %i): a swap between every two receiver fs calls; nothing outside --dir changes, every received file is inside with its content', async (firstSwap) => {
    const base = await tempDir('ferry-race-');
    const src = join(base, 'src');
    const dst = join(base, 'inbox');
    realFs.mkdirSync(src);
    realFs.mkdirSync(dst);
    const { root, files } = makeTree(src);
    const outside = makeOutside(base);
    const before = snapshotTree(outside);

    const events: Json[] = [];
    const options: ReceiveOptions = { dir: dst, host: '127.0.0.1', port: 0, insecure: true, once: true, timeoutMs: 10_000, onEvent: (e) => void events.push(e as unknown as Json) };
    const rx = await receive(options);
    let stats: RacerStats | undefined;
    armRacer(dst, outside, firstSwap);
    try {
      const tx = ferry(['send', root, '--to', `127.0.0.1:${rx.port}`, '--insecure', '--json']);
      // The transfer may fail or partly fail: refusals are fine. The receiver must end its session, not crash.
      await tx.exit(20_000);
      expect(typeof (await within(rx.done, 10_000, 'the receiver session'))).toBe('number');
    } finally {
      stats = disarmRacer();
      await rx.close();
    }

    // The race happened: the hook saw the receiver's calls, and folders were swapped.
    expect(stats.calls).toBeGreaterThan(10);
    expect(stats.swaps).toBeGreaterThan(0);
    const leaked = changes(before, snapshotTree(outside));
    const calls = stats.log.slice(0, 300).join(' ');
    expect(leaked, `outside --dir changed (racer: ${stats.calls} calls, ${stats.swaps} swaps; the receiver's calls in order: ${calls})`).toEqual([]);
    expect(checkReceived(dst, events, files)).toEqual([]);
    expect(symlinksIn(dst)).toEqual([]);
  });

  test('a racer process loops swapping during CLI transfers (three sessions, three trees): nothing outside --dir changes, every received file is inside with its content', async () => {
    const base = await tempDir('ferry-race-');
    const src = join(base, 'src');
    const dst = join(base, 'inbox');
    realFs.mkdirSync(src);
    realFs.mkdirSync(dst);
    const files = new Map<string, Buffer>();
    const roots: string[] = [];
    for (const name of ['tree1', 'tree2', 'tree3']) {
      const made = makeTree(src, name);
      roots.push(made.root);
      for (const [k, v] of made.files) files.set(k, v);
      // More folders and small files: more windows for the racer.
      for (let i = 0; i < 50; i++) {
        const dir = join(made.root, 'many', `f${i}`);
        realFs.mkdirSync(dir, { recursive: true });
        const content = pattern(200, 1000 + i);
        realFs.writeFileSync(join(dir, 'x.txt'), content);
        files.set(`${name}/many/f${i}/x.txt`, content);
        realFs.utimesSync(dir, PAST_S, PAST_S);
      }
    }
    const outside = makeOutside(base);
    const before = snapshotTree(outside);

    const rx = await receiver(dst, ['--insecure', '--no-fsync']);
    const racer = spawnJson(process.execPath, ['-e', RACER_SCRIPT, dst, outside], undefined, { stdin: 'pipe' });
    let result: Json | undefined;
    try {
      await racer.waitFor((e) => e.ready === true, 5000);
      // One session each: a session that ends at its first I/O failure does not end the race.
      for (const root of roots) await ferry(['send', root, '--to', `127.0.0.1:${rx.port}`, '--insecure', '--json']).exit(20_000);
    } finally {
      racer.child.stdin!.end();
      result = await racer.waitFor((e) => typeof e.rounds === 'number', 5000).catch(() => undefined);
      await racer.exit(5000).catch(() => racer.child.kill('SIGKILL'));
    }
    // The receiver serves on: a plain file after the race arrives.
    const control = join(base, 'control.txt');
    realFs.writeFileSync(control, 'after the race\n');
    files.set('control.txt', Buffer.from('after the race\n'));
    const after = ferry(['send', control, '--to', `127.0.0.1:${rx.port}`, '--insecure', '--json']);
    expect(await after.exit(10_000), after.stderr()).toBe(0);
    rx.child.kill('SIGTERM');
    expect(await rx.exit(5000)).toBe(143);

    expect(result?.swaps).toBeGreaterThan(0);
    const leaked = changes(before, snapshotTree(outside));
    expect(leaked, `outside --dir changed (racer: ${JSON.stringify(result)})`).toEqual([]);
    // Real concurrency: a folder the racer moved aside may stay moved, with what ferry wrote into it.
    expect(checkReceived(dst, rx.events, files, { allowMoved: true })).toEqual([]);
    expect(symlinksIn(dst)).toEqual([]);
  });
});

