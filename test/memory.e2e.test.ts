/**
 * Memory stays flat when the far end is slower than the wire: the real CLI,
 * encrypted, a 128 MiB file into `ferry receive --stdout` whose standard
 * output this test drains at about 50 MiB/s. Without backpressure from the
 * sink through the connection to the socket (and the sender waiting for its
 * writes), the bytes the output has not taken would pile up in one of the two
 * processes: the receiver would hold most of the file. The bound is tight
 * enough to hold the CLI's young-generation setting too (src/heap.ts).
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ferry, receiver } from './support/cli.js';
import { fingerprint, pattern, tempDir, within } from './support/files.js';

const MiB = 1024 * 1024;
const FILE_MIB = 128;
/**
 * What either side may grow by over an idle ferry: the sink's 4 MiB, the
 * sender's four 1 MiB buffers, and the dead socket buffers the young
 * generation holds between collections (src/heap.ts). Measured here: the
 * receiver 11-17 MiB, the sender 10-14; without heap.ts the receiver grew by
 * 36-39, and without the pause on a full sink by 127.
 */
const GROWTH_LIMIT_MIB = 28;

/** VmRSS and VmHWM of a live process, in MiB (undefined once it has exited). */
function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string): number => Number(/\s(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN);
    return { rss: kib('VmRSS:') / 1024, hwm: kib('VmHWM:') / 1024 };
  } catch {
    return undefined;
  }
}

async function writeLarge(dir: string): Promise<{ path: string; content: Buffer }> {
  const block = pattern(MiB, 5);
  const path = join(dir, 'large.bin');
  const file = await open(path, 'w');
  for (let i = 0; i < FILE_MIB; i++) await file.write(block);
  await file.close();
  return { path, content: Buffer.concat(Array.from({ length: FILE_MIB }, () => block)) };
}

describe.skipIf(process.platform !== 'linux')('memory under a slow reader', () => {
  test('128 MiB into a --stdout drained at ~50 MiB/s: neither side grows by more than 28 MiB, and every byte arrives in order', async () => {
    const src = await writeLarge(await tempDir());
    const rx = await receiver(await tempDir(), ['--stdout', '--once'], { rawStdout: true });
    const out = rx.child.stdout!;
    out.pause();
    const idleRx = memoryOf(rx.child.pid!)!.rss;
    const tx = ferry(['send', src.path, '--to', `127.0.0.1:${rx.port}`, '-q']);
    const peak = { rx: 0, tx: 0 };
    const sample = (): void => {
      peak.rx = Math.max(peak.rx, memoryOf(rx.child.pid!)?.hwm ?? 0);
      peak.tx = Math.max(peak.tx, memoryOf(tx.child.pid!)?.hwm ?? 0);
    };
    // A MiB at a time, then a pause: a reader far slower than loopback (a pace, not a synchronisation).
    let taken = 0;
    out.on('data', (chunk: Buffer) => {
      taken += chunk.length;
      if (taken < MiB) return;
      taken = 0;
      out.pause();
      sample();
      setTimeout(() => out.resume(), 20);
    });
    out.resume();
    expect(await tx.exit(60_000)).toBe(0);
    expect(await within(rx.exit(60_000), 60_000, 'receiver exit')).toBe(0);
    expect(fingerprint(rx.stdoutBytes())).toEqual(fingerprint(src.content));
    // The sender is the same program: the receiver's resident set once listening is the measure of both.
    expect(peak.rx - idleRx).toBeLessThan(GROWTH_LIMIT_MIB);
    expect(peak.tx - idleRx).toBeLessThan(GROWTH_LIMIT_MIB);
  }, 90_000);
});
