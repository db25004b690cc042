/**
 * `send --compress` end to end (docs/protocol.md 5.1 bit 0, 5.6.1), counted
 * by a proxy between the real CLI processes (secure session, TLS and all):
 *
 * - a folder of text moves far fewer bytes with --compress than without, and
 *   arrives verified, byte for byte;
 * - random data moves about the same bytes either way (it goes as DATA);
 * - a receiver whose HELLO does not set bit 0 (a scripted one) gets plain
 *   DATA only, the transfer succeeds, and the sender says so once.
 *
 * Bytes are asserted, never times.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { send } from '../src/index.js';
import { FrameType } from '../src/protocol/constants.js';
import { encodeAccept, encodeVerdict } from '../src/protocol/messages.js';
import { receiver, run } from './support/cli.js';
import { answerHello, fakeReceiver, type FakeReceiver } from './support/fake-receiver.js';
import { listing, sourceText as text, tempDir, textFolder, within } from './support/files.js';
import { startProxy } from './support/proxy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Sends `paths` through a counting proxy to a fresh receiver; the bytes the sender put on the wire. */
async function sendCounted(paths: string[], extra: string[]): Promise<{ up: number; dst: string }> {
  const dst = await tempDir('ferry-compress-dst-');
  const rx = await receiver(dst, ['--once']);
  const proxy = await startProxy({ host: '127.0.0.1', port: rx.port });
  try {
    const tx = await run(['send', ...paths, '--to', `127.0.0.1:${proxy.port}`, '--json', ...extra], 60_000);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await rx.exit(10_000)).toBe(0);
    return { up: proxy.forwarded.up, dst };
  } finally {
    await proxy.close();
  }
}

describe('through a counting proxy', () => {
  test('a folder of text: under 40% of the bytes with --compress, and every file arrives as sent', { timeout: 120_000 }, async () => {
    const src = await textFolder(20, 2, 2 * MiB);
    const plain = await sendCounted([src.dir], []);
    const compressed = await sendCounted([src.dir], ['--compress']);
    console.log(`text folder of ${src.bytes} bytes: ${plain.up} bytes up plain, ${compressed.up} with --compress (${((100 * compressed.up) / plain.up).toFixed(1)}%)`);
    expect(plain.up).toBeGreaterThan(src.bytes);
    expect(compressed.up).toBeLessThan(plain.up * 0.4);
    for (const [name, content] of src.files) {
      expect((await readFile(join(compressed.dst, 'docs', name))).equals(content), name).toBe(true);
    }
  });

  test('random data: the same bytes within 1% either way (it goes as DATA), and it arrives as sent', { timeout: 120_000 }, async () => {
    const dir = await tempDir('ferry-compress-src-');
    const content = randomBytes(6 * MiB + 17);
    const path = join(dir, 'noise.bin');
    await writeFile(path, content);
    const plain = await sendCounted([path], []);
    const compressed = await sendCounted([path], ['--compress']);
    console.log(`random file of ${content.length} bytes: ${plain.up} bytes up plain, ${compressed.up} with --compress`);
    expect(Math.abs(compressed.up - plain.up)).toBeLessThan(plain.up / 100);
    expect((await readFile(join(compressed.dst, 'noise.bin'))).equals(content)).toBe(true);
  });
});

describe('resume', () => {
  test('a compressed transfer cut short keeps a partial counted in file bytes (more than crossed the wire), and the next send resumes from it', { timeout: 60_000 }, async () => {
    const src = await tempDir('ferry-compress-src-');
    const dst = await tempDir('ferry-compress-dst-');
    const content = text(8 * MiB, 7);
    const path = join(src, 'log.txt');
    await writeFile(path, content);
    const cutAfter = 300 * KiB;
    const rx = await receiver(dst, ['--once']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { cutAfter });
    try {
      const tx = await run(['send', path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--compress', '--retries', '0'], 30_000);
      expect(tx.code, tx.stderr).toBe(1);
      expect(await rx.exit(10_000)).toBe(1);
    } finally {
      await proxy.close();
    }
    const [partial] = await listing(dst);
    expect(partial).toMatch(/^\.ferry-[0-9a-f]{32}\.part$/);
    const held = (await stat(join(dst, partial!))).size;
    // Offsets count decoded bytes: the partial holds more of the file than the proxy let through.
    expect(held).toBeGreaterThan(cutAfter);
    expect(held).toBeLessThan(content.length);

    const again = await receiver(dst, ['--once']);
    const tx = await run(['send', path, '--to', `127.0.0.1:${again.port}`, '--json', '--compress'], 30_000);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await again.exit(10_000)).toBe(0);
    const sent = tx.events.find((e) => e.event === 'sent')!;
    expect(sent.resumedFrom as number).toBeGreaterThan(0);
    expect(sent.resumedFrom as number).toBeLessThanOrEqual(held);
    expect(sent).toMatchObject({ bytes: content.length, transferred: content.length - (sent.resumedFrom as number) });
    expect(await listing(dst)).toEqual(['log.txt']);
    expect((await readFile(join(dst, 'log.txt'))).equals(content)).toBe(true);
  });
});

describe('a receiver that cannot decompress', () => {
  let fake: FakeReceiver | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  test('HELLO without bit 0: only DATA, every file verified, and one notice for the whole send', { timeout: 60_000 }, async () => {
    const dir = await tempDir('ferry-compress-src-');
    const small = text(20 * KiB, 1);
    const large = text(3 * MiB, 2);
    await writeFile(join(dir, 'small.txt'), small);
    await writeFile(join(dir, 'large.txt'), large);
    const dataAtEnd: number[] = [];
    let data = 0;
    fake = await fakeReceiver({
      // dataBytes restarts at each control frame: the count before END is the last one seen here.
      onData(peer) {
        data = peer.dataBytes;
      },
      // The fake's decoder knows no ZDATA: one would end the connection, and the send would fail.
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.Offer && (frame.flags & 0x04) === 0) peer.say(encodeAccept());
        if (frame.type === FrameType.End) {
          dataAtEnd.push(data);
          data = 0;
          peer.say(encodeVerdict('OK', frame.digests.subarray(0, 32)));
        }
      },
    });
    const notices: string[] = [];
    const summary = await within(
      send({ insecure: true, compress: true, files: [join(dir, 'small.txt'), join(dir, 'large.txt')], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000, onNotice: (m) => notices.push(m), skipSame: false }),
      30_000,
      'send',
    );
    expect(summary.error).toBeUndefined();
    expect(summary.files.map((f) => f.code)).toEqual(['OK', 'OK']);
    expect(dataAtEnd).toEqual([small.length, large.length]);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/cannot decompress/);
  });
});
