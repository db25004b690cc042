/**
 * The library API over real loopback sockets, in process: what scripted
 * transfer tests rely on. The CLI end-to-end tests are in cli.e2e.test.ts.
 */
import { chmod, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { receive, send, type Receiver } from '../src/index.js';
import type { FerryEvent } from '../src/events.js';
import { HashId } from '../src/protocol/constants.js';
import { encodeHello, encodeOffer, frameDataInPlace } from '../src/protocol/messages.js';
import { fingerprint, listing, sha256, tempDir, within, writeSample } from './support/files.js';
import { closedPort } from './support/ports.js';
import { startProxy } from './support/proxy.js';
import { rawConnect } from './support/raw.js';

const MiB = 1024 * 1024;

/** The library runs encrypted by default: a fixed code for these tests. */
const CODE = '7-orbit-velvet-cactus';

async function startReceiver(dir: string, extra: Parameters<typeof receive>[0] = {}): Promise<{ rx: Receiver; events: FerryEvent[] }> {
  const events: FerryEvent[] = [];
  const rx = await receive({ dir, host: '127.0.0.1', port: 0, code: CODE, onEvent: (e) => events.push(e), ...extra });
  return { rx, events };
}

describe('one session, many sizes', () => {
  test('sizes 0, 1, chunk-1, chunk, chunk+1 and several MiB arrive byte-identical with mode and mtime', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const sizes = [0, 1, MiB - 1, MiB, MiB + 1, 5 * MiB + 3];
    const files = await Promise.all(sizes.map((size) => writeSample(src, `f${size}.bin`, size)));
    await chmod(files[1]!.path, 0o640);
    await utimes(files[1]!.path, 1_600_000_000, 1_600_000_000.5);
    const { rx, events } = await startReceiver(dst);
    const sent: FerryEvent[] = [];
    const summary = await within(send({ code: CODE, files: files.map((f) => f.path), host: '127.0.0.1', port: rx.port, onEvent: (e) => sent.push(e) }), 20_000, 'send');
    await rx.close();

    expect(summary.exitCode).toBe(0);
    expect(summary.files.map((f) => f.code)).toEqual(sizes.map(() => 'OK'));
    for (const f of files) {
      expect(fingerprint(await readFile(join(dst, f.path.split('/').pop()!)))).toEqual(fingerprint(f.content));
    }
    const one = await stat(join(dst, 'f1.bin'));
    expect(one.mode & 0o777).toBe(0o640);
    expect(one.mtimeMs).toBe(1_600_000_000_500);
    expect(await listing(dst)).toEqual(sizes.map((s) => `f${s}.bin`).sort());

    const received = events.filter((e) => e.event === 'received');
    expect(received).toHaveLength(sizes.length);
    for (const e of received) {
      if (e.event !== 'received') continue;
      expect(e.hash?.algorithm).toBe('blake3');
      expect(e.path).toBe(join(dst, e.name));
    }
    const sentEvents = sent.filter((e) => e.event === 'sent');
    expect(sentEvents.map((e) => (e.event === 'sent' ? e.hash?.digest : ''))).toEqual(received.map((e) => (e.event === 'received' ? e.hash?.digest : '')));
    const lastProgress = sent.filter((e) => e.event === 'progress' && e.name === 'f5242883.bin').pop();
    expect(lastProgress).toMatchObject({ done: 5 * MiB + 3, bytes: 5 * MiB + 3 });
  });

  test('SHA-256 on request: the reported digest is what sha256sum prints', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'doc.txt', 70_000);
    const { rx, events } = await startReceiver(dst);
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port, hash: 'sha256' }), 10_000);
    await rx.close();
    expect(summary.files[0]).toMatchObject({ code: 'OK', hash: { algorithm: 'sha256', digest: sha256(file.content) } });
    expect(events.find((e) => e.event === 'received')).toMatchObject({ hash: { algorithm: 'sha256', digest: sha256(file.content) } });
  });

  test('a small chunk size still frames correctly (many frames per file)', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'small-chunks.bin', 100_001);
    const { rx } = await startReceiver(dst);
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port, chunkSize: 977 }), 10_000);
    await rx.close();
    expect(summary.exitCode).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'small-chunks.bin')))).toEqual(fingerprint(file.content));
  });
});

describe('never clobbers', () => {
  test('an existing name is refused (exit 4), the old file kept; the other files still arrive', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const a = await writeSample(src, 'a.txt', 100);
    const b = await writeSample(src, 'b.txt', 200);
    await writeFile(join(dst, 'a.txt'), 'precious');
    const { rx, events } = await startReceiver(dst);
    const summary = await within(send({ code: CODE, files: [a.path, b.path], host: '127.0.0.1', port: rx.port }), 10_000);
    await rx.close();
    expect(summary.exitCode).toBe(4);
    expect(summary.files.map((f) => f.code)).toEqual(['ERR_EXISTS', 'OK']);
    expect(await readFile(join(dst, 'a.txt'), 'utf8')).toBe('precious');
    expect(fingerprint(await readFile(join(dst, 'b.txt')))).toEqual(fingerprint(b.content));
    expect(events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_EXISTS', name: 'a.txt' }));
    expect(await listing(dst)).toEqual(['a.txt', 'b.txt']);
  });

  test('overwrite replaces', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const a = await writeSample(src, 'a.txt', 100);
    await writeFile(join(dst, 'a.txt'), 'old');
    const { rx } = await startReceiver(dst, { overwrite: true });
    const summary = await within(send({ code: CODE, files: [a.path], host: '127.0.0.1', port: rx.port }), 10_000);
    await rx.close();
    expect(summary.exitCode).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'a.txt')))).toEqual(fingerprint(a.content));
  });

  test('two senders of one name at once: one file wins whole, the other is told ERR_BUSY (a retry would then see it exists)', async () => {
    const dst = await tempDir();
    const srcs = await Promise.all([tempDir(), tempDir()]);
    const files = await Promise.all(srcs.map((dir, i) => writeSample(dir, 'same.bin', 3 * MiB, i + 7)));
    const { rx } = await startReceiver(dst);
    const results = await within(Promise.all(files.map((f) => send({ code: CODE, files: [f.path], host: '127.0.0.1', port: rx.port }))), 20_000);
    await rx.close();
    const codes = results.map((r) => r.files[0]!.code).sort();
    expect(codes).toEqual(['ERR_BUSY', 'OK']);
    const winner = results.findIndex((r) => r.files[0]!.code === 'OK');
    expect(fingerprint(await readFile(join(dst, 'same.bin')))).toEqual(fingerprint(files[winner]!.content));
    expect(await listing(dst)).toEqual(['same.bin']);
  });
});

describe('many senders at once', () => {
  test('12 concurrent senders: all verified, none mixed up', async () => {
    const dst = await tempDir();
    const src = await tempDir();
    const files = await Promise.all(Array.from({ length: 12 }, (_, i) => writeSample(src, `c${i}.bin`, 50_000 + i * 40_000)));
    const { rx } = await startReceiver(dst);
    const results = await within(Promise.all(files.map((f) => send({ code: CODE, files: [f.path], host: '127.0.0.1', port: rx.port }))), 20_000);
    await rx.close();
    expect(results.map((r) => r.exitCode)).toEqual(files.map(() => 0));
    for (const f of files) expect(fingerprint(await readFile(join(dst, f.path.split('/').pop()!)))).toEqual(fingerprint(f.content));
  });
});

describe('bad and silent peers do not stop the receiver', () => {
  test('garbage bytes: ERR_BAD_MAGIC to that client; a correct sender is served after', async () => {
    const dst = await tempDir();
    const src = await tempDir();
    const { rx, events } = await startReceiver(dst);
    const bad = await rawConnect(rx.port);
    bad.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(await bad.frame(0)).toMatchObject({ code: 'ERR_BAD_MAGIC' });
    await bad.closed();
    const ok = await writeSample(src, 'after.bin', 1000);
    expect((await within(send({ code: CODE, files: [ok.path], host: '127.0.0.1', port: rx.port }), 10_000)).exitCode).toBe(0);
    await rx.close();
    expect(events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_MAGIC' }));
  });

  test('a client that connects and says nothing is dropped after the timeout, others meanwhile served', async () => {
    const dst = await tempDir();
    const src = await tempDir();
    const { rx, events } = await startReceiver(dst, { timeoutMs: 400 });
    const silent = await rawConnect(rx.port);
    const ok = await writeSample(src, 'meanwhile.bin', 1000);
    expect((await within(send({ code: CODE, files: [ok.path], host: '127.0.0.1', port: rx.port }), 10_000)).exitCode).toBe(0);
    expect(await silent.frame(0)).toMatchObject({ code: 'ERR_TIMEOUT' });
    await silent.closed();
    await rx.close();
    expect(events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_TIMEOUT' }));
  });

  test('a sender that stops mid-file: timeout; no visible file, only the hidden partial kept for a resume', async () => {
    const dst = await tempDir();
    const { rx } = await startReceiver(dst, { timeoutMs: 400, insecure: true, code: undefined });
    const peer = await rawConnect(rx.port);
    peer.send(encodeHello([HashId.Sha256]));
    peer.send(encodeOffer({ size: 1000, mtimeMs: 0, mode: 0o644, algorithm: HashId.Sha256, name: 'stuck.bin' }));
    expect(await peer.frame(1)).toMatchObject({ type: 0x11 });
    const data = Buffer.alloc(8 + 10 + 1);
    peer.send(frameDataInPlace(data, 10));
    expect(await peer.frame(2)).toMatchObject({ code: 'ERR_TIMEOUT' });
    await rx.close();
    const left = await listing(dst);
    expect(left).toEqual([expect.stringMatching(/^\.ferry-[0-9a-f]{32}\.part$/)]);
    expect((await stat(join(dst, left[0]!))).size).toBe(10);
  });

  test('a receiver that accepts and never answers: the sender gives up with ERR_TIMEOUT', async () => {
    const src = await tempDir();
    const mute = createServer(() => {});
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const file = await writeSample(src, 'x.bin', 10);
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: (mute.address() as AddressInfo).port, timeoutMs: 300 }), 5000);
    mute.close();
    expect(summary.exitCode).toBe(1);
    expect(summary.error?.code).toBe('ERR_TIMEOUT');
  });
});

describe('input errors', () => {
  test('a closed port: ERR_CONNECT, exit 1', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'x.bin', 10);
    const port = await closedPort();
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port }), 5000);
    expect(summary).toMatchObject({ exitCode: 1, error: { code: 'ERR_CONNECT' } });
  });

  test('a missing file is a usage error before anything is sent', async () => {
    await expect(send({ code: CODE, files: ['/nonexistent/ferry/file'], host: '127.0.0.1', port: 9 })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND', exitCode: 2 });
  });

  test('standard input without a name is a usage error', async () => {
    await expect(send({ code: CODE, files: ['-'], host: '127.0.0.1', port: 9 })).rejects.toMatchObject({ code: 'ERR_USAGE', exitCode: 2 });
  });

  test('a missing --dir is a usage error', async () => {
    await expect(receive({ dir: '/nonexistent/ferry/dir', port: 0 })).rejects.toMatchObject({ code: 'ERR_USAGE' });
  });

  test('a port in use: ERR_LISTEN', async () => {
    const dst = await tempDir();
    const { rx } = await startReceiver(dst);
    await expect(receive({ dir: dst, host: '127.0.0.1', port: rx.port })).rejects.toMatchObject({ code: 'ERR_LISTEN' });
    await rx.close();
  });

  test('a file larger than --max-size is refused before any data moves', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'big.bin', 5000);
    const { rx } = await startReceiver(dst, { maxSize: 4999 });
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port }), 5000);
    await rx.close();
    expect(summary.files[0]?.code).toBe('ERR_TOO_LARGE');
    expect(summary.exitCode).toBe(4);
    expect(await listing(dst)).toEqual([]);
  });
});

test('digest reported by the library equals an independent BLAKE3 of the file', async () => {
  const src = await tempDir();
  const dst = await tempDir();
  const file = await writeSample(src, 'b3.bin', 1234567);
  const { rx } = await startReceiver(dst);
  const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port }), 10_000);
  await rx.close();
  const { Blake3Hasher } = createRequire(import.meta.url)('@napi-rs/blake-hash') as { Blake3Hasher: new () => { update(b: Buffer): void; digest(f: string): string } };
  const h = new Blake3Hasher();
  h.update(file.content);
  expect(summary.files[0]?.hash?.digest).toBe(h.digest('hex'));
});

/** Whether this machine has IPv6 loopback (containers sometimes do not). */
async function hasIpv6(): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}

test.skipIf(!(await hasIpv6()))('by default the receiver listens on all interfaces, IPv6 and IPv4', async () => {
  const src = await tempDir();
  const dst = await tempDir();
  const a = await writeSample(src, 'v6.bin', 100);
  const b = await writeSample(src, 'v4.bin', 100);
  const events: FerryEvent[] = [];
  const rx = await receive({ dir: dst, port: 0, code: CODE, onEvent: (e) => events.push(e) });
  expect(rx.host).toBe('::');
  expect((await within(send({ code: CODE, files: [a.path], host: '::1', port: rx.port }), 5000)).exitCode).toBe(0);
  expect((await within(send({ code: CODE, files: [b.path], host: '127.0.0.1', port: rx.port }), 5000)).exitCode).toBe(0);
  await rx.close();
  const peers = events.flatMap((e) => (e.event === 'received' ? [e.peer] : []));
  expect(peers).toEqual([expect.stringMatching(/^\[::1\]:\d+$/), expect.stringMatching(/^127\.0\.0\.1:\d+$/)]);
});

test('a slow link is not a dead one: the receiver heartbeats while a 1 MiB chunk takes longer than the timeout to drain', async () => {
  const src = await tempDir();
  const dst = await tempDir();
  const file = await writeSample(src, 'slow.bin', 1_200_000);
  const { rx } = await startReceiver(dst, { timeoutMs: 600 });
  // About 2.4 s for the file, so each 1 MiB write takes 2 s to hand over: four timeouts' worth.
  const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { bytesPerSecond: 500_000 });
  try {
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: proxy.port, timeoutMs: 600 }), 15_000);
    expect(summary.error).toBeUndefined();
    expect(summary.exitCode).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'slow.bin')))).toEqual(fingerprint(file.content));
  } finally {
    await proxy.close();
    await rx.close();
  }
});
