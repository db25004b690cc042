/**
 * Connection slots before authentication (src/receiver/admission.ts): a
 * thousand idle connections and a few that trickle bytes, from many loopback
 * source addresses, must not keep an honest sender out.
 */
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, send } from '../src/index.js';
import type { FerryEvent } from '../src/events.js';
import { FrameType } from '../src/protocol/constants.js';
import { encodeFrame, encodeHello } from '../src/protocol/messages.js';
import { passwordScalar, spake2Start } from '../src/secure/spake2.js';
import { fingerprint, tempDir, within, writeSample } from './support/files.js';

const CODE = '7-orbit-velvet-cactus';

const sockets: Socket[] = [];
const timers: NodeJS.Timeout[] = [];
afterEach(() => {
  for (const t of timers.splice(0)) clearInterval(t);
  for (const s of sockets.splice(0)) s.destroy();
});

/** Connects from `localAddress`; resolves once connected (the receiver may close it right after). */
function open(port: number, localAddress: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => {});
  sockets.push(socket);
  return within(
    new Promise<Socket>((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    }),
    10_000,
    `connect from ${localAddress}`,
  );
}

describe('connection slots before authentication', () => {
  test.each([
    ['with a code', false],
    ['--insecure (unauthenticated until the first HELLO)', true],
  ])('%s: 1,000 idle connections from 100 addresses and 20 trickling a frame byte by byte: the honest sender gets through and the file is verified', async (_label, insecure) => {
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'honest.bin', 200_000);
    const events: FerryEvent[] = [];
    const secret = insecure ? { insecure: true } : { code: CODE };
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, ...secret, onEvent: (e) => events.push(e) });
    try {
      let closedByReceiver = 0;
      // 10 connections from each of 127.0.1.1 .. 127.0.1.100, 50 at a time (the listen backlog is finite).
      const idle = Array.from({ length: 1000 }, (_, i) => `127.0.1.${(i % 100) + 1}`);
      for (let i = 0; i < idle.length; i += 50) {
        const batch = await Promise.all(idle.slice(i, i + 50).map((address) => open(rx.port, address)));
        for (const s of batch) s.once('close', () => closedByReceiver++);
      }
      const pake = insecure ? encodeHello([2]) : encodeFrame(FrameType.Pake, spake2Start('A', await passwordScalar('8-orbit-velvet-cactus')).share);
      const tricklers = await Promise.all(Array.from({ length: 20 }, () => open(rx.port, '127.0.0.200')));
      let offset = 0;
      timers.push(
        setInterval(() => {
          for (const s of tricklers) if (!s.destroyed) s.write(pake.subarray(offset % pake.length, (offset % pake.length) + 1));
          offset++;
        }, 100),
      );

      const started = performance.now();
      const summary = await within(send({ ...secret, files: [file.path], host: '127.0.0.1', port: rx.port, retries: 0 }), 15_000, 'honest send');
      const seconds = (performance.now() - started) / 1000;
      const busyLines = events.filter((e) => e.event === 'error' && e.code === 'ERR_BUSY').length;
      console.log(`honest send took ${seconds.toFixed(2)} s; ${closedByReceiver} of 1000 idle connections closed by the receiver; ${busyLines} ERR_BUSY log lines`);
      expect(summary.exitCode).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'honest.bin')))).toEqual(fingerprint(file.content));
      // About half the idle connections were evicted (512 unauthenticated at most), and the log said so in a few lines, not hundreds.
      expect(closedByReceiver).toBeGreaterThan(400);
      expect(busyLines).toBeGreaterThan(0);
      expect(events.filter((e) => e.event === 'error').length).toBeLessThan(30);
    } finally {
      await rx.close();
    }
  });

  test('the authenticated-session cap is separate: at the cap a sender with the code is told ERR_BUSY, not dropped silently', async () => {
    const dst = await tempDir();
    const events: FerryEvent[] = [];
    const rx = await receive({ dir: dst, host: '127.0.0.1', port: 0, code: CODE, maxConnections: 1, onEvent: (e) => events.push(e) });
    try {
      // One session held open: a stream that has not ended yet.
      const stdin = new PassThrough();
      stdin.write('still coming');
      const first = send({ code: CODE, files: ['-'], stdinName: 'stream.txt', stdin, host: '127.0.0.1', port: rx.port, retries: 0 });
      await within(
        new Promise<void>((resolve) => {
          const poll = setInterval(() => events.some((e) => e.event === 'start') && (clearInterval(poll), resolve()), 10);
        }),
        10_000,
        'the first session to start',
      );
      const file = await writeSample(await tempDir(), 'second.bin', 1000);
      const second = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port, retries: 0 }), 10_000, 'second send');
      expect(second.error).toMatchObject({ code: 'ERR_BUSY' });
      expect(events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BUSY' }));
      stdin.end();
      expect((await within(first, 10_000, 'first send')).exitCode).toBe(0);
    } finally {
      await rx.close();
    }
  });
});
