/**
 * Resume through the real CLI: an interrupted file leaves its partial
 * (`.ferry-<32 hex>.part`) in its destination folder; sending the same name
 * again sends only the rest when the prefix matches, and starts over when
 * it does not; `ferry send` retries a broken connection by itself; a file
 * that failed verification leaves nothing; `ferry receive --clean` and the
 * 24-hour rule remove partials, and only partials.
 */
import { existsSync, watch } from 'node:fs';
import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ferry, receiver, run } from './support/cli.js';
import { fingerprint, listing, pattern, tempDir, within, writeSample } from './support/files.js';
import { startProxy, type FaultPlan, type FaultProxy } from './support/proxy.js';

const MiB = 1024 * 1024;
/** Big enough that a cut at half lands well inside the data, small enough for a shared 2-CPU machine. */
const SIZE = 24 * MiB;
const HALF = SIZE / 2;

type Json = Record<string, unknown>;

const isTemp = (name: string): boolean => /^\.ferry-[0-9a-f]{32}\.part$/.test(name);
const sentEvent = (events: Json[], name: string): Json | undefined => events.find((e) => e.event === 'sent' && e.name === name);
const errorsOf = (events: Json[]): Json[] => events.filter((e) => e.event === 'error');

async function withProxy<T>(port: number, plan: FaultPlan, body: (proxy: FaultProxy) => Promise<T>): Promise<T> {
  const proxy = await startProxy({ host: '127.0.0.1', port }, plan);
  try {
    return await body(proxy);
  } finally {
    await proxy.close();
  }
}

/** The one partial in `dir` (and nothing else there), with its size. */
async function onlyPartial(dir: string): Promise<{ name: string; size: number }> {
  const names = await listing(dir);
  expect(names).toHaveLength(1);
  expect(names[0], names.join(', ')).toSatisfy(isTemp);
  return { name: names[0]!, size: (await stat(join(dir, names[0]!))).size };
}

/** Sends `path` through a proxy that cuts after `cutAfter` bytes, with no retry: both sides exit 1 and the partial stays. */
async function sendCut(path: string, dst: string, cutAfter: number): Promise<{ name: string; size: number }> {
  const rx = await receiver(dst, ['--once']);
  await withProxy(rx.port, { cutAfter }, async (proxy) => {
    const tx = await run(['send', path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--retries', '0']);
    expect(tx.code, tx.stderr).toBe(1);
    expect(errorsOf(tx.events)).toContainEqual(expect.objectContaining({ code: 'ERR_CONNECTION_LOST', exitCode: 1 }));
    expect(tx.events.filter((e) => e.event === 'retry')).toEqual([]);
    expect(await rx.exit()).toBe(1);
  });
  return onlyPartial(dst);
}

/** Sends `path` straight to a fresh `--once` receiver on `dst`; both must exit 0. Returns the sender's and receiver's events for `name`. */
async function sendDirect(path: string, dst: string, name: string): Promise<{ sent: Json; received: Json }> {
  const rx = await receiver(dst, ['--once']);
  const tx = await run(['send', path, '--to', `127.0.0.1:${rx.port}`, '--json']);
  expect(tx.code, tx.stderr).toBe(0);
  expect(await rx.exit()).toBe(0);
  const received = rx.events.find((e) => e.event === 'received' && e.name === name);
  expect(received).toBeDefined();
  return { sent: sentEvent(tx.events, name)!, received: received! };
}

describe('resume after an interrupted transfer', () => {
  test('a cut at half (--retries 0): exit 1, one partial kept; sent again, only the rest goes and the file is whole', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', SIZE);

    const partial = await sendCut(file.path, dst, HALF);
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(SIZE);

    const { sent, received } = await sendDirect(file.path, dst, 'big.bin');
    expect(await listing(dst)).toEqual(['big.bin']);
    expect(fingerprint(await readFile(join(dst, 'big.bin')))).toEqual(fingerprint(file.content));
    const resumedFrom = sent.resumedFrom as number;
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(partial.size);
    expect(sent).toMatchObject({ bytes: SIZE, transferred: SIZE - resumedFrom });
    expect(received).toMatchObject({ bytes: SIZE, resumedFrom, hash: sent.hash });
  });

  test('same name, different content (one byte inside the kept prefix): starts over from 0 and delivers the new content', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 8 * MiB;
    const first = await writeSample(src, 'same.bin', size);

    const partial = await sendCut(first.path, dst, size / 2);
    expect(partial.size).toBeGreaterThan(0);
    const changed = Buffer.from(first.content);
    const at = Math.floor(partial.size / 2);
    changed[at] = changed[at]! ^ 0xff;
    await writeFile(first.path, changed);

    const { sent, received } = await sendDirect(first.path, dst, 'same.bin');
    expect(sent).toMatchObject({ bytes: size, resumedFrom: 0, transferred: size });
    expect(received).toMatchObject({ resumedFrom: 0 });
    expect(await listing(dst)).toEqual(['same.bin']);
    expect(fingerprint(await readFile(join(dst, 'same.bin')))).toEqual(fingerprint(changed));
  });

  test('the receiver killed (SIGKILL) mid-file: the partial survives, and a new receiver on the same --dir resumes from it', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'killed.bin', SIZE);
    const rx = await receiver(dst, ['--once']);
    // Throttled so the kill surely lands mid-file.
    await withProxy(rx.port, { bytesPerSecond: 8 * MiB }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--retries', '0']);
      await rx.waitFor((e) => e.event === 'progress' && (e.done as number) >= 4 * MiB);
      rx.child.kill('SIGKILL');
      expect(await rx.exit()).toBe(137);
      expect(await tx.exit()).toBe(1);
    });
    const partial = await onlyPartial(dst);
    expect(partial.size).toBeGreaterThan(0);

    const { sent } = await sendDirect(file.path, dst, 'killed.bin');
    expect(sent.resumedFrom).toBeGreaterThan(0);
    expect(sent.transferred).toBe(SIZE - (sent.resumedFrom as number));
    expect(await listing(dst)).toEqual(['killed.bin']);
    expect(fingerprint(await readFile(join(dst, 'killed.bin')))).toEqual(fingerprint(file.content));
  });

  test('the sender interrupted (SIGINT) mid-file: exit 130, the partial is kept, and the next send resumes', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'stopped.bin', SIZE);
    const rx = await receiver(dst, ['--once']);
    await withProxy(rx.port, { bytesPerSecond: 8 * MiB }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      await rx.waitFor((e) => e.event === 'progress' && (e.done as number) >= 4 * MiB);
      tx.child.kill('SIGINT');
      expect(await tx.exit()).toBe(130);
      expect(await rx.exit()).toBe(1);
    });
    expect((await onlyPartial(dst)).size).toBeGreaterThan(0);

    const { sent } = await sendDirect(file.path, dst, 'stopped.bin');
    expect(sent.resumedFrom).toBeGreaterThan(0);
    expect(sent.transferred).toBe(SIZE - (sent.resumedFrom as number));
    expect(fingerprint(await readFile(join(dst, 'stopped.bin')))).toEqual(fingerprint(file.content));
  });

  test('a digest mismatch (a byte flipped in transit): exit 3 and the partial is deleted, not kept for resume', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'flipped.bin', 3 * MiB);
    // Plaintext, so the flip reaches ferry's digest (encrypted, TLS would refuse it first).
    const rx = await receiver(dst, ['--once', '--insecure']);
    await withProxy(rx.port, { flipAt: 2 * MiB, flipMask: 0x01 }, async (proxy) => {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--insecure']);
      expect(tx.code).toBe(3);
      expect(errorsOf(tx.events)).toContainEqual(expect.objectContaining({ code: 'ERR_HASH_MISMATCH', exitCode: 3 }));
      expect(tx.events.filter((e) => e.event === 'retry')).toEqual([]);
      expect(await rx.exit()).toBe(3);
    });
    expect(await listing(dst)).toEqual([]);
  });
});

describe('automatic retry', () => {
  test('the first connection cut at half, default retries, --retry-delay 0.05: a retry event, exit 0, only the rest re-sent', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'retried.bin', SIZE);
    // No --once: the receiver must outlive the broken connection.
    const rx = await receiver(dst);
    await withProxy(rx.port, { cutAfter: HALF, onlyFirst: 1 }, async (proxy) => {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--retry-delay', '0.05'], 25_000);
      expect(tx.code, tx.stderr).toBe(0);
      const retries = tx.events.filter((e) => e.event === 'retry');
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries[0]).toMatchObject({ attempt: 1, of: 5, delaySeconds: 0.05, code: 'ERR_CONNECTION_LOST' });
      expect(typeof retries[0]!.message).toBe('string');

      const sent = sentEvent(tx.events, 'retried.bin')!;
      expect(sent.resumedFrom).toBeGreaterThan(0);
      expect(sent.transferred).toBe(SIZE - (sent.resumedFrom as number));
      expect(sent.transferred).toBeLessThan(SIZE);
      expect(tx.events.find((e) => e.event === 'summary')).toMatchObject({ side: 'send', files: 1, failures: 0, exitCode: 0 });
      // What the wire says, not only what the sender reports: the later connections carried less than the file.
      expect(proxy.forwarded.up - HALF).toBeLessThan(SIZE);
    });
    await rx.waitFor((e) => e.event === 'received' && e.name === 'retried.bin', 5000);
    expect(await listing(dst)).toEqual(['retried.bin']);
    expect(fingerprint(await readFile(join(dst, 'retried.bin')))).toEqual(fingerprint(file.content));
  });

  test('a tree cut after its first file: the retry does not trip over the files that already arrived', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const root = join(src, 'set');
    await mkdir(root);
    const files = await Promise.all(['one.bin', 'two.bin', 'three.bin'].map((n, i) => writeSample(root, n, 6 * MiB, i + 7)));
    const rx = await receiver(dst);
    // 9 MiB: past the first file (whichever goes first), inside the second.
    await withProxy(rx.port, { cutAfter: 9 * MiB, onlyFirst: 1 }, async (proxy) => {
      const tx = await run(['send', root, '--to', `127.0.0.1:${proxy.port}`, '--json', '--retry-delay', '0.05'], 25_000);
      expect(tx.code, tx.stderr).toBe(0);
      expect(tx.events.filter((e) => e.event === 'retry').length).toBeGreaterThanOrEqual(1);
      expect(errorsOf(tx.events).filter((e) => e.code === 'ERR_EXISTS')).toEqual([]);
      for (const f of files) {
        const name = `set/${f.path.slice(root.length + 1)}`;
        expect(tx.events.filter((e) => e.event === 'sent' && e.name === name), name).toHaveLength(1);
      }
      expect(tx.events.find((e) => e.event === 'summary')).toMatchObject({ side: 'send', files: 3, failures: 0, exitCode: 0 });
    });
    expect(await listing(join(dst, 'set'))).toEqual(['one.bin', 'three.bin', 'two.bin']);
    for (const f of files) {
      expect(fingerprint(await readFile(join(dst, 'set', f.path.slice(root.length + 1))))).toEqual(fingerprint(f.content));
    }
  });
});

describe('cleaning partials', () => {
  const partName = (seed: string): string => `.ferry-${seed.repeat(32 / seed.length)}.part`;

  test('ferry receive --clean deletes every .ferry-*.part under --dir, recursively, and nothing else; it does not listen', async () => {
    const dst = await tempDir();
    await mkdir(join(dst, 'sub', 'deeper'), { recursive: true });
    const partials = [join(dst, partName('0')), join(dst, 'sub', partName('ab')), join(dst, 'sub', 'deeper', partName('9f'))];
    for (const p of partials) await writeFile(p, pattern(1000));
    const kept = [join(dst, '.keep'), join(dst, 'sub', 'file.txt'), join(dst, 'sub', 'deeper', '.ferry-notes.txt'), join(dst, 'photo.part')];
    for (const p of kept) await writeFile(p, 'keep me');

    const r = await run(['receive', '--clean', '--dir', dst], 10_000);
    expect(r.code, r.stderr).toBe(0);
    expect(`${r.stdout}\n${r.stderr}`).toMatch(/\b3\b/);
    expect(await listing(dst)).toEqual(['.keep', 'photo.part', 'sub']);
    expect(await listing(join(dst, 'sub'))).toEqual(['deeper', 'file.txt']);
    expect(await listing(join(dst, 'sub', 'deeper'))).toEqual(['.ferry-notes.txt']);
    for (const p of kept) expect(await readFile(p, 'utf8')).toBe('keep me');
  });

  test('a receiver starting up deletes partials older than 24 hours and keeps younger ones', async () => {
    const dst = await tempDir();
    await mkdir(join(dst, 'sub'));
    const old = join(dst, 'sub', partName('1'));
    const young = join(dst, partName('2'));
    await writeFile(old, pattern(100));
    await writeFile(young, pattern(100));
    const longAgo = (Date.now() - 25 * 3600 * 1000) / 1000;
    await utimes(old, longAgo, longAgo);
    const recent = (Date.now() - 23 * 3600 * 1000) / 1000;
    await utimes(young, recent, recent);

    // The start-up sweep may run beside listening: wait for the deletion itself (inotify), bounded.
    const watcher = watch(join(dst, 'sub'));
    try {
      const gone = new Promise<void>((resolve) => {
        const check = (): void => {
          if (!existsSync(old)) resolve();
        };
        watcher.on('change', check);
        watcher.on('error', check);
        check();
      });
      const rx = await receiver(dst);
      await within(gone, 5000, 'the old partial to be deleted');
      rx.child.kill('SIGTERM');
      expect(await rx.exit()).toBe(143);
    } finally {
      watcher.close();
    }
    expect(await listing(join(dst, 'sub'))).toEqual([]);
    expect(await listing(dst)).toEqual([partName('2'), 'sub']);
  });
});

describe('test support: startProxy onlyFirst', () => {
  test('faults hit the first N connections only; later ones pass untouched', async () => {
    const received: Array<Promise<number>> = [];
    const sink = createServer((socket: Socket) => {
      socket.on('error', () => undefined);
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      received.push(new Promise((resolve) => socket.once('close', () => resolve(bytes))));
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const proxy = await startProxy({ host: '127.0.0.1', port: (sink.address() as AddressInfo).port }, { cutAfter: 10, onlyFirst: 1 });
    try {
      for (let i = 1; i <= 2; i++) {
        const client = connect({ host: '127.0.0.1', port: proxy.port });
        client.on('error', () => undefined);
        client.end(Buffer.alloc(100, i));
        await within(new Promise((resolve) => client.once('close', resolve)), 2000, `client ${i} to close`);
        await proxy.closedConnections(i);
      }
      expect(await within(Promise.all(received), 2000, 'the sink connections to close')).toEqual([10, 100]);
    } finally {
      await proxy.close();
      await new Promise((resolve) => sink.close(resolve));
    }
  });
});
