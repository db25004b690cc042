/**
 * Streams through the real CLI: `ferry send - --name NAME` reads stdin (size
 * unknown ahead, digest still verified), and `ferry receive --stdout` writes
 * the one incoming file to stdout as it arrives, its events on stderr.
 * Pipes are wired in node, not a shell.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ferry, receiver, run } from './support/cli.js';
import { fingerprint, listing, pattern, tempDir, within, writeSample } from './support/files.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

type Json = Record<string, unknown>;
const sentEvent = (events: Json[], name: string): Json | undefined => events.find((e) => e.event === 'sent' && e.name === name);

/** Every entry under `root`: a file's fingerprint, or 'dir'. */
async function readTree(root: string, prefix = ''): Promise<Record<string, ReturnType<typeof fingerprint> | 'dir'>> {
  const out: Record<string, ReturnType<typeof fingerprint> | 'dir'> = {};
  for (const name of (await readdir(root)).sort()) {
    const path = join(root, name);
    if ((await lstat(path)).isDirectory()) {
      out[prefix + name] = 'dir';
      Object.assign(out, await readTree(path, `${prefix}${name}/`));
    } else {
      out[prefix + name] = fingerprint(await readFile(path));
    }
  }
  return out;
}

/** A small tree to tar: nested folder, an empty folder, an empty file, a unicode name. */
async function makeProject(parent: string): Promise<string> {
  const root = join(parent, 'proj');
  await mkdir(join(root, 'sub', 'deep'), { recursive: true });
  await mkdir(join(root, 'empty'));
  await writeSample(root, 'a.txt', 1000);
  await writeSample(root, 'nothing', 0);
  await writeSample(join(root, 'sub'), 'b.bin', 300 * 1024);
  await writeSample(join(root, 'sub', 'deep'), 'café.txt', 77);
  return root;
}

/** Resolves with a child's exit code (bounded). */
function exitOf(child: ChildProcess, what: string, ms = 15_000): Promise<number | null> {
  return within(new Promise((resolve) => child.once('close', (code) => resolve(code))), ms, what);
}

/** `tar c -C parent name`, its output teed into `into` and kept. */
function tarCreate(parent: string, name: string, into: NodeJS.WritableStream): { bytes: () => Buffer; exit: Promise<number | null> } {
  const tar = spawn('tar', ['c', '-C', parent, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  tar.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  tar.stdout.pipe(into);
  return { bytes: () => Buffer.concat(chunks), exit: exitOf(tar, 'tar c') };
}

describe('ferry send -', () => {
  test('tar c | ferry send - --name t.tar: the receiver saves the archive byte for byte, and it unpacks to the tree', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const out = await tempDir();
    const root = await makeProject(src);
    const rx = await receiver(dst, ['--once']);
    const tx = ferry(['send', '-', '--name', 't.tar', '--to', `127.0.0.1:${rx.port}`, '--json'], {}, { stdin: 'pipe' });
    const tar = tarCreate(src, 'proj', tx.child.stdin!);
    expect(await tar.exit).toBe(0);
    expect(await tx.exit(), tx.stderr()).toBe(0);
    expect(await rx.exit()).toBe(0);

    const archive = tar.bytes();
    expect(await listing(dst)).toEqual(['t.tar']);
    expect(fingerprint(await readFile(join(dst, 't.tar')))).toEqual(fingerprint(archive));
    const sent = sentEvent(tx.events, 't.tar');
    expect(sent).toMatchObject({ bytes: archive.length, transferred: archive.length, resumedFrom: 0, hash: { algorithm: 'blake3' } });
    expect(rx.events).toContainEqual(expect.objectContaining({ event: 'received', name: 't.tar', bytes: archive.length, hash: sent!.hash }));

    const untar = spawn('tar', ['x', '-C', out, '-f', join(dst, 't.tar')], { stdio: 'ignore' });
    expect(await exitOf(untar, 'tar x')).toBe(0);
    expect(await readTree(join(out, 'proj'))).toEqual(await readTree(root));
  });

  test('without --name: usage error, exit 2', async () => {
    const r = await run(['send', '-', '--to', '127.0.0.1:9', '--json']);
    expect(r.code).toBe(2);
    expect(r.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_USAGE', exitCode: 2 }));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a byte flipped in a stream: the digest still catches it (exit 3 both sides) and nothing is saved', async () => {
    const dst = await tempDir();
    // Plaintext, so the flip reaches ferry's digest (encrypted, TLS would refuse it first).
    const rx = await receiver(dst, ['--once', '--insecure']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { flipAt: 2 * MiB, flipMask: 0x01 });
    try {
      const tx = ferry(['send', '-', '--name', 'flipped.bin', '--to', `127.0.0.1:${proxy.port}`, '--json', '--insecure'], {}, { stdin: 'pipe' });
      tx.child.stdin!.end(pattern(3 * MiB, 5));
      expect(await tx.exit()).toBe(3);
      expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_HASH_MISMATCH', exitCode: 3 }));
      expect(await rx.exit()).toBe(3);
      expect(await listing(dst)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe('ferry receive --stdout', () => {
  test('tar c | ferry send - | ferry receive --stdout | tar x: the tree comes out; events go to stderr, exit 0', async () => {
    const src = await tempDir();
    const out = await tempDir();
    const root = await makeProject(src);
    const rx = await receiver(await tempDir(), ['--stdout'], { rawStdout: true });
    const untar = spawn('tar', ['x', '-C', out], { stdio: ['pipe', 'ignore', 'inherit'] });
    const untarExit = exitOf(untar, 'tar x');
    rx.child.stdout!.pipe(untar.stdin);
    const tx = ferry(['send', '-', '--name', 'proj.tar', '--to', `127.0.0.1:${rx.port}`, '--json'], {}, { stdin: 'pipe' });
    const tar = tarCreate(src, 'proj', tx.child.stdin!);

    expect(await tar.exit).toBe(0);
    expect(await tx.exit(), tx.stderr()).toBe(0);
    expect(await rx.exit(), rx.stderr()).toBe(0);
    expect(await untarExit).toBe(0);

    expect(fingerprint(rx.stdoutBytes())).toEqual(fingerprint(tar.bytes()));
    expect(rx.events).toContainEqual(expect.objectContaining({ event: 'received', name: 'proj.tar', bytes: tar.bytes().length }));
    expect(await readTree(join(out, 'proj'))).toEqual(await readTree(root));
  });

  test('a 20 MiB stdin stream flows through without being held whole: output appears while stdin is still open', async () => {
    const SIZE = 20 * MiB;
    const data = pattern(SIZE, 20);
    const rx = await receiver(await tempDir(), ['--stdout'], { rawStdout: true });
    const tx = ferry(['send', '-', '--name', 'stream.bin', '--to', `127.0.0.1:${rx.port}`, '--json'], {}, { stdin: 'pipe' });
    const stdin = tx.child.stdin!;

    // 4 MiB in, stdin left open: bytes must reach the far end's stdout before the sender could know the size.
    stdin.write(data.subarray(0, 4 * MiB));
    const senderGaveUp = tx.exit().then((code) => {
      throw new Error(`the sender exited ${code} with its stdin still open: ${tx.stderr()}`);
    });
    await Promise.race([rx.waitForStdout(1, 10_000), senderGaveUp]);
    expect(rx.stdoutBytes().length).toBeLessThanOrEqual(4 * MiB);
    expect(tx.exitedAt()).toBeUndefined();

    stdin.end(data.subarray(4 * MiB));
    expect(await tx.exit(), tx.stderr()).toBe(0);
    expect(await rx.exit(), rx.stderr()).toBe(0);
    expect(fingerprint(rx.stdoutBytes())).toEqual(fingerprint(data));
    expect(sentEvent(tx.events, 'stream.bin')).toMatchObject({ bytes: SIZE });
    expect(rx.events).toContainEqual(expect.objectContaining({ event: 'received', name: 'stream.bin', bytes: SIZE }));
  });

  test('a regular file works too, and a second file in the same send is refused: stdout holds exactly the first', async () => {
    const src = await tempDir();
    const first = await writeSample(src, 'first.bin', 2 * MiB + 3);
    const second = await writeSample(src, 'second.bin', 5000);
    const rx = await receiver(await tempDir(), ['--stdout'], { rawStdout: true });
    const tx = await run(['send', first.path, second.path, '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code).not.toBe(0);
    await rx.exit();
    expect(fingerprint(rx.stdoutBytes())).toEqual(fingerprint(first.content));
  });

  test('a directory is refused: the sender exits non-zero and stdout never mixes files (it holds nothing, or one whole file)', async () => {
    const src = await tempDir();
    await mkdir(join(src, 'folder'));
    const a = await writeSample(join(src, 'folder'), 'a.bin', 3000, 1);
    const b = await writeSample(join(src, 'folder'), 'b.bin', 4000, 2);
    const rx = await receiver(await tempDir(), ['--stdout'], { rawStdout: true });
    const tx = await run(['send', join(src, 'folder'), '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code).not.toBe(0);
    await rx.exit();
    expect([fingerprint(Buffer.alloc(0)), fingerprint(a.content), fingerprint(b.content)]).toContainEqual(fingerprint(rx.stdoutBytes()));
  });
});
