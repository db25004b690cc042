/**
 * Memory before authentication, against the real CLI receiver (a child
 * process, so its RSS is its own): a peer that sends one valid PAKE frame
 * and then keeps streaming must be cut off, not buffered.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { FrameType } from '../src/protocol/constants.js';
import { encodeFrame } from '../src/protocol/messages.js';
import { passwordScalar, spake2Start } from '../src/secure/spake2.js';
import { receiver } from './support/cli.js';
import { tempDir, within } from './support/files.js';
import { rawConnect, type RawPeer } from './support/raw.js';

const MiB = 1024 * 1024;

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** Writes `total` bytes in 1 MiB pieces, honouring backpressure; stops early when the peer closes. */
async function stream(peer: RawPeer, total: number): Promise<number> {
  const piece = Buffer.alloc(MiB, 0x5a);
  let written = 0;
  while (written < total && !peer.socket.destroyed) {
    written += piece.length;
    if (!peer.socket.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          peer.socket.off('drain', done);
          peer.socket.off('close', done);
          resolve();
        };
        peer.socket.on('drain', done);
        peer.socket.on('close', done);
      });
    }
  }
  return written;
}

describe('memory before authentication', () => {
  test('64 MiB behind a PAKE while 5 silent handshakes hold every token: RSS grows < 16 MiB and the receiver closes the connection', async () => {
    const rx = await receiver(await tempDir());
    const pid = rx.child.pid!;
    const w = await passwordScalar('8-orbit-velvet-cactus');
    const pake = (): Buffer => encodeFrame(FrameType.Pake, spake2Start('A', w).share);
    // Five handshakes that get pB and then say nothing: each holds a token until its timeout (30 s).
    const holders = await Promise.all([1, 2, 3, 4, 5].map(() => rawConnect(rx.port)));
    for (const h of holders) h.send(pake());
    for (const h of holders) expect((await h.frame(0, 10_000)).type).toBe(FrameType.Pake);
    const before = rssBytes(pid);

    const flooder = await rawConnect(rx.port);
    flooder.send(pake());
    const sent = await within(stream(flooder, 64 * MiB), 30_000, 'streaming 64 MiB');
    const closed = await flooder.closed(10_000).then(
      () => true,
      () => false,
    );
    const after = rssBytes(pid);
    console.log(`receiver RSS ${(before / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB (+${((after - before) / MiB).toFixed(1)}) with ${sent / MiB} MiB offered; closed by the receiver: ${closed}`);
    expect(after - before).toBeLessThan(16 * MiB);
    expect(closed).toBe(true);
    for (const h of holders) h.socket.destroy();
    rx.child.kill('SIGINT');
    await rx.exit();
  });
});
