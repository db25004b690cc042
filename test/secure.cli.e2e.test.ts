/**
 * Encryption and the one-time code through the real CLI: what a user sees
 * (the code and the command to run), what a wrong code does (exit 4,
 * nothing written, the receiver serves on), that neither side falls back to
 * plaintext, that a tampered stream fails cleanly, and that the bytes on the
 * wire carry neither the file's contents nor its name.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { TEST_CODE, ferry, receiver, run } from './support/cli.js';
import { fingerprint, listing, pattern, tempDir, visible, within, writeSample } from './support/files.js';
import { startProxy } from './support/proxy.js';
import { rawConnect, type RawPeer } from './support/raw.js';
import { FrameType } from '../src/protocol/constants.js';
import { encodeFrame } from '../src/protocol/messages.js';
import { passwordScalar, spake2Start } from '../src/secure/spake2.js';

const MiB = 1024 * 1024;

describe('the one-time code', () => {
  test('a receiver prints its code and the exact command to run on the other host, even with --quiet', async () => {
    const dst = await tempDir();
    const rx = ferry(['receive', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--quiet', '--code', '3-apple-river-orbit']);
    // Human output is not JSON: wait (bounded) for its third line.
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => void (rx.lines.length >= 3 && resolve());
        rx.child.stdout!.on('data', () => setImmediate(check));
        check();
      }),
      10_000,
      'the three listening lines',
    );
    rx.child.kill('SIGINT');
    await rx.exit();
    expect(rx.lines[0]).toMatch(/^ferry: listening on 127\.0\.0\.1 port \d+$/);
    expect(rx.lines[1]).toBe('ferry: code 3-apple-river-orbit');
    // The code goes in the environment, not in the sender's argv, where `ps` shows it to other local users.
    expect(rx.lines[2]).toMatch(/^ferry: on the other host run: FERRY_CODE=3-apple-river-orbit ferry send FILE --to 127\.0\.0\.1:\d+$/);
  });

  test('without --code a receiver makes a fresh code each time, in the documented shape', async () => {
    const dst = await tempDir();
    const codes: string[] = [];
    for (let i = 0; i < 2; i++) {
      // An empty --code (as an unset variable in a script gives) means none: the receiver draws one.
      const rx = ferry(['receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--code=']);
      const listening = await rx.waitFor((e) => e.event === 'listening');
      codes.push(listening.code as string);
      rx.child.kill('SIGINT');
      await rx.exit();
    }
    for (const code of codes) expect(code).toMatch(/^[1-9]\d{0,2}-[a-z]+-[a-z]+-[a-z]+$/);
    expect(codes[0]).not.toBe(codes[1]);
  });

  test('the right code through FERRY_CODE: verified, and the code never needs to be in argv', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'secret.bin', 2 * MiB + 7);
    const rx = await receiver(dst, ['--once']);
    const tx = ferry(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json'], { FERRY_CODE: TEST_CODE });
    expect(await tx.exit()).toBe(0);
    expect(await rx.exit()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'secret.bin')))).toEqual(fingerprint(file.content));
  });

  test('a wrong code: the sender exits 4 (ERR_BAD_CODE), nothing is written, the receiver serves on and the right code then works', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'x.bin', 100_000);
    const rx = await receiver(dst);
    const wrong = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json', '--code', '8-orbit-velvet-cactus']);
    expect(wrong.code).toBe(4);
    expect(wrong.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE', exitCode: 4 }));
    expect(wrong.stderr).toMatch(/wrong code/);
    await rx.waitFor((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE');
    expect(await listing(dst)).toEqual([]);
    const right = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(right.code).toBe(0);
    expect(await listing(dst)).toEqual(['x.bin']);
    rx.child.kill('SIGINT');
    await rx.exit();
  });

  test('repeated wrong codes are rate-limited per source: after the burst more guesses from that address are refused (ERR_RATE_LIMITED), and the code holder from another address gets through', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'x.bin', 10);
    const rx = await receiver(dst);
    const w = await passwordScalar('8-apple-apple-apple');
    const guess = async (): Promise<RawPeer> => {
      const peer = await rawConnect(rx.port, '127.0.0.1', { localAddress: '127.0.0.2' });
      peer.send(encodeFrame(FrameType.Pake, spake2Start('A', w).share));
      return peer;
    };
    // The burst: 5 wrong codes from 127.0.0.2, each seeing pB and answering with a CONFIRM that cannot be right.
    const burst = await Promise.all([1, 2, 3, 4, 5].map(() => guess()));
    for (const peer of burst) {
      expect((await peer.frame(0)).type).toBe(FrameType.Pake);
      peer.send(encodeFrame(FrameType.Confirm, Buffer.alloc(32)));
      expect(await peer.frame(2)).toMatchObject({ type: FrameType.Abort, code: 'ERR_BAD_CODE' });
    }
    // Three more at once from the same address: two may wait their turn, the third is refused at once.
    const more = await Promise.all([1, 2, 3].map(() => guess()));
    const refused = await Promise.any(more.map((peer) => peer.frame(0, 5000).then((f) => (f.type === FrameType.Abort ? f : Promise.reject(new Error('not an ABORT'))))));
    expect(refused).toMatchObject({ type: FrameType.Abort, code: 'ERR_RATE_LIMITED' });
    // The code holder dials 127.0.0.1 (another source): served at the next refill (6 s), or the
    // one after if it arrives once a refill has already gone to a waiting guess.
    const right = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json'], 20_000);
    expect(right.code).toBe(0);
    expect(await listing(dst)).toEqual(['x.bin']);
    for (const peer of [...burst, ...more]) peer.socket.destroy();
    rx.child.kill('SIGINT');
    await rx.exit();
  });

  test('a sender with no code and no --insecure: usage error (exit 2) before connecting', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'x.bin', 10);
    const r = ferry(['send', file.path, '--to', '127.0.0.1:9'], { FERRY_CODE: '' });
    expect(await r.exit()).toBe(2);
    expect(r.stderr()).toMatch(/--code/);
  });
});

describe('no fallback to plaintext', () => {
  test('an --insecure sender to a receiver with a code: exit 4 ERR_INSECURE_MISMATCH, nothing written', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'x.bin', 1000);
    const rx = await receiver(dst);
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json', '--insecure']);
    expect(tx.code).toBe(4);
    expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_INSECURE_MISMATCH' }));
    expect(await listing(dst)).toEqual([]);
    rx.child.kill('SIGINT');
    await rx.exit();
  });

  test('a sender with a code to an --insecure receiver: exit 4 ERR_INSECURE_MISMATCH, nothing written', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'x.bin', 1000);
    const rx = await receiver(dst, ['--insecure']);
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code).toBe(4);
    expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_INSECURE_MISMATCH' }));
    expect(await listing(dst)).toEqual([]);
    rx.child.kill('SIGINT');
    await rx.exit();
  });

  test('both sides --insecure: plain TCP works, and the receiver says so', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'x.bin', 1000);
    const rx = await receiver(dst, ['--insecure', '--once']);
    expect(rx.events[0]).toMatchObject({ event: 'listening', insecure: true });
    expect(rx.events[0]).not.toHaveProperty('code');
    expect((await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--insecure'])).code).toBe(0);
    expect(await rx.exit()).toBe(0);
  });
});

describe('on the wire', () => {
  test('the recorded stream holds neither the file contents nor its name', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const name = 'very-secret-name-4f1d.txt';
    const content = Buffer.concat([Buffer.from('TOP SECRET CONTENT '.repeat(2000)), pattern(200_000, 3)]);
    const path = join(src, name);
    await writeFile(path, content);
    const rx = await receiver(dst, ['--once']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, {}, { record: true });
    try {
      const tx = await run(['send', path, '--to', `127.0.0.1:${proxy.port}`]);
      expect(tx.code).toBe(0);
      expect(await rx.exit()).toBe(0);
      const wire = proxy.recorded();
      expect(wire.length).toBeGreaterThan(content.length);
      expect(wire.includes(Buffer.from(name))).toBe(false);
      expect(wire.includes(Buffer.from('TOP SECRET'))).toBe(false);
      expect(wire.includes(content.subarray(100_000, 100_064))).toBe(false);
      expect(fingerprint(await readFile(join(dst, name)))).toEqual(fingerprint(content));
    } finally {
      await proxy.close();
    }
  });

  test('one byte of ciphertext flipped: the transfer fails cleanly (exit 1 both sides, never 0 or a saved file)', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'tampered.bin', 3 * MiB);
    const rx = await receiver(dst, ['--once']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { flipAt: 2 * MiB, flipMask: 0x01 });
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      expect(tx.code).toBe(1);
      expect(await rx.exit()).toBe(1);
      expect(await visible(dst)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
