/**
 * `send --compress` over a real 100 mbit link (tc tbf on the sender's veth,
 * two network namespaces): a folder of text and a file of random bytes, each
 * with and without --compress. A measurement, not a race: the seconds, rates
 * and CPU are printed; what is asserted is that everything arrives verified
 * and the bytes the sender's veth put on the wire (text: under 40% of the
 * plain run; random: within 1%).
 *
 * Needs Linux, root and iproute2 (CI runs as root); skipped with a message elsewhere.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { tempDir, textFolder } from './support/files.js';
import { canUseNetns, createLink, destroyAll, killAll, netnsUnavailable, sh, type Link } from './support/netns.js';

const MiB = 1024 * 1024;

if (!canUseNetns) console.warn(`compress.netns.e2e.test.ts: skipped, network namespaces are not available: ${netnsUnavailable}`);

/** Bytes the sender's veth has sent so far (IP and TCP headers included). */
async function wireBytes(link: Link): Promise<number> {
  return Number(await sh('ip', ['netns', 'exec', link.sender.ns, 'cat', `/sys/class/net/${link.sender.dev}/statistics/tx_bytes`]));
}

/** One send over the shaped link to a fresh receiver; exit codes checked, figures returned. */
async function measure(link: Link, path: string, extra: string[]): Promise<{ dst: string; seconds: number; wire: number; bytes: number }> {
  const dst = await tempDir('ferry-compress-netns-');
  const rx = link.ferry('receiver', ['receive', '--json', '--host', link.receiver.addr, '--port', '0', '--dir', dst, '--once', '--timeout', '10']);
  const port = (await rx.waitFor((e) => e.event === 'listening')).port as number;
  const before = await wireBytes(link);
  const tx = link.ferry('sender', ['send', path, '--to', `${link.receiver.addr}:${port}`, '--json', '--timeout', '10', ...extra]);
  const [txCode, rxCode] = await Promise.all([tx.exit(60_000), rx.exit(60_000)]);
  expect(txCode, tx.stderr()).toBe(0);
  expect(rxCode, rx.stderr()).toBe(0);
  const summary = tx.events.find((e) => e.event === 'summary')!;
  return { dst, seconds: summary.seconds as number, wire: (await wireBytes(link)) - before, bytes: summary.bytes as number };
}

function line(what: string, m: { seconds: number; wire: number; bytes: number }): string {
  return `${what}: ${m.seconds.toFixed(2)} s, ${(m.bytes / 1e6 / m.seconds).toFixed(1)} MB/s of file data, ${m.wire} bytes on the wire (${((100 * m.wire) / m.bytes).toFixed(1)}%)`;
}

describe.skipIf(!canUseNetns)('--compress over a 100 mbit link (tbf, two namespaces)', () => {
  afterEach(async () => {
    await killAll();
  });
  afterAll(async () => {
    await destroyAll();
  });

  test('a folder of text moves in under 40% of the bytes; random data in the same bytes; all verified', async () => {
    const link = await createLink();
    try {
      await link.shape('sender', '100mbit');
      const text = await textFolder(40, 3, 4 * MiB);
      const plain = await measure(link, text.dir, []);
      const compressed = await measure(link, text.dir, ['--compress']);
      console.log(`netns 100mbit, ${line('text plain', plain)}; ${line('text --compress', compressed)}`);
      expect(compressed.wire).toBeLessThan(plain.wire * 0.4);
      for (const [name, content] of text.files) expect((await readFile(join(compressed.dst, 'docs', name))).equals(content), name).toBe(true);

      const dir = await tempDir('ferry-compress-netns-src-');
      const noise = randomBytes(16 * MiB);
      await writeFile(join(dir, 'noise.bin'), noise);
      const rawPlain = await measure(link, join(dir, 'noise.bin'), []);
      const rawCompressed = await measure(link, join(dir, 'noise.bin'), ['--compress']);
      console.log(`netns 100mbit, ${line('random plain', rawPlain)}; ${line('random --compress', rawCompressed)}`);
      expect(Math.abs(rawCompressed.wire - rawPlain.wire)).toBeLessThan(rawPlain.wire / 100);
      expect((await readFile(join(rawCompressed.dst, 'noise.bin'))).equals(noise)).toBe(true);
    } finally {
      await link.destroy();
    }
  }, 90_000);
});
