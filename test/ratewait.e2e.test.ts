/**
 * The issue "for people and for scripts", through the real CLI:
 *
 * - a receiver that was never reached fails the send at once, with one line
 *   and exit 1 (ERR_CONNECT), whatever --retries says; `--wait SECONDS`
 *   keeps trying for a receiver started after the sender; a connection lost
 *   mid-file is still retried and resumed;
 * - `--limit-rate` on the sender, and on the receiver for all its senders
 *   together, seen from a counting proxy between them: the bytes it forwards
 *   are never more than the limit allows (rate x elapsed + burst + a frame).
 *   Only that upper bound is asserted, never a speed.
 */
import { readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { burstFor } from '../src/rate-limit.js';
import { ferry, receiver, run } from './support/cli.js';
import { fingerprint, pattern, tempDir, within, writeSample } from './support/files.js';
import { startProxy } from './support/proxy.js';

const KiB = 1024;
const MiB = 1024 * KiB;

type Json = Record<string, unknown>;
const errorsOf = (events: Json[]): Json[] => events.filter((e) => e.event === 'error');
const retriesOf = (events: Json[]): Json[] => events.filter((e) => e.event === 'retry');

/** A loopback port nobody listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function listenOn(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

describe('a receiver that was never reached', () => {
  test('nothing listening, --retries 5: exit 1 at once, one line on stderr, no retry', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'a.bin', 1000);
    const port = await deadPort();
    // Before: 5 retries with backoff, 31 s and six lines; the bound here is a few seconds.
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${port}`, '--retries', '5'], 5000);
    expect(tx.code, tx.stderr).toBe(1);
    const lines = tx.stderr.trimEnd().split('\n');
    expect(lines, tx.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^ferry: cannot connect to 127\.0\.0\.1:\d+: connection refused/);

    const json = await run(['send', file.path, '--to', `127.0.0.1:${port}`, '--retries', '5', '--json'], 5000);
    expect(json.code).toBe(1);
    expect(retriesOf(json.events)).toEqual([]);
    expect(errorsOf(json.events)).toEqual([expect.objectContaining({ code: 'ERR_CONNECT', exitCode: 1 })]);
  });

  test('something that takes the connection but is no receiver (it hangs up in the handshake): exit 1 at once, no retry', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'a.bin', 1000);
    const server = createServer((socket) => socket.destroy());
    await listenOn(server, 0);
    try {
      const port = (server.address() as AddressInfo).port;
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${port}`, '--retries', '5', '--json'], 5000);
      expect(tx.code, tx.stderr).toBe(1);
      expect(retriesOf(tx.events)).toEqual([]);
      expect(errorsOf(tx.events)).toEqual([expect.objectContaining({ exitCode: 1 })]);
    } finally {
      server.close();
    }
  });

  test('--wait 1 with nothing ever there: exit 1 once the wait is over, one line saying it waited', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'a.bin', 1000);
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${await deadPort()}`, '--wait', '1', '--retries', '5'], 6000);
    expect(tx.code, tx.stderr).toBe(1);
    expect(tx.stderr.trimEnd().split('\n'), tx.stderr).toEqual([expect.stringMatching(/connection refused.*waited 1 s \(--wait\)$/)]);
  });

  test('--wait 10, the receiver started after the sender: the sender keeps trying and the file arrives', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'late.bin', 300 * KiB);
    // Until the receiver comes, the port is held by something that hangs up at once and counts
    // the sender's tries: proof that it tried (and was turned away) before the receiver existed.
    let tries = 0;
    let sawTwo!: () => void;
    const twoTries = new Promise<void>((resolve) => (sawTwo = resolve));
    const standIn = createServer((socket) => {
      socket.destroy();
      if (++tries === 2) sawTwo();
    });
    await listenOn(standIn, 0);
    const port = (standIn.address() as AddressInfo).port;

    const tx = ferry(['send', file.path, '--to', `127.0.0.1:${port}`, '--wait', '10', '--json']);
    await within(twoTries, 5000, 'two tries of the sender');
    await new Promise<void>((resolve) => standIn.close(() => resolve()));
    // From here until the receiver listens, the sender's tries are refused: it waits on.
    const rx = ferry(['receive', '--json', '--host', '127.0.0.1', '--port', String(port), '--dir', dst, '--once']);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(await rx.exit()).toBe(0);
    expect(retriesOf(tx.events)).toEqual([]);
    expect(fingerprint(await readFile(join(dst, 'late.bin')))).toEqual(fingerprint(file.content));
  });

  test('a connection established, then lost mid-file, is still retried and resumed, even when the next connect fails too', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 8 * MiB;
    const file = await writeSample(src, 'cut.bin', size);
    // No --once: the receiver must outlive the broken connection.
    const rx = await receiver(dst);
    // sender -> gate (hangs up on the 2nd connection, as a receiver restarting would) -> proxy (cuts the 1st at half) -> receiver
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { cutAfter: size / 2, onlyFirst: 1 });
    const gate = await startMeter(proxy.port, (n) => n === 2);
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${gate.port}`, '--json', '--retries', '3', '--retry-delay', '0.05'], 20_000);
      expect(tx.code, tx.stderr).toBe(0);
      const retries = retriesOf(tx.events);
      expect(retries.length, JSON.stringify(retries)).toBeGreaterThanOrEqual(2);
      expect(retries[0]).toMatchObject({ attempt: 1, code: 'ERR_CONNECTION_LOST' });
      const sent = tx.events.find((e) => e.event === 'sent' && e.name === 'cut.bin');
      expect(sent?.resumedFrom as number).toBeGreaterThan(0);
      await rx.waitFor((e) => e.event === 'received' && e.name === 'cut.bin', 5000);
      expect(fingerprint(await readFile(join(dst, 'cut.bin')))).toEqual(fingerprint(file.content));
    } finally {
      await gate.close();
      await proxy.close();
    }
  });
});

/** Bytes a meter forwarded, as (time, bytes) on the meter's own clock. */
interface Tick {
  at: number;
  bytes: number;
}

/**
 * A counting proxy: forwards every connection to `port`, with backpressure
 * both ways, and notes when each client->server chunk went on (`up`) and
 * when each server->client chunk did (`down`), on its own clock. The
 * connections `hangUpOn` picks (1 for the first) are closed at once instead.
 */
async function startMeter(port: number, hangUpOn: (n: number) => boolean = () => false): Promise<{ port: number; up: Tick[]; down: Tick[]; close(): Promise<void> }> {
  let accepted = 0;
  const up: Tick[] = [];
  const down: Tick[] = [];
  const sockets = new Set<Socket>();
  const pipe = (from: Socket, to: Socket, ticks: Tick[]): void => {
    from.on('data', (chunk: Buffer) => {
      ticks.push({ at: performance.now(), bytes: chunk.length });
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
    from.on('error', () => to.destroy());
    from.on('close', () => to.destroy());
  };
  const server = createServer((client) => {
    if (hangUpOn(++accepted)) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    pipe(client, upstream, up);
    pipe(upstream, client, down);
  });
  await listenOn(server, 0);
  return {
    port: (server.address() as AddressInfo).port,
    up,
    down,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The largest excess, over every window between two ticks, of the bytes
 * forwarded in it over `rate` x its length: what went beyond the limit in
 * the worst stretch of the transfer. Within burst + a frame for a sender
 * that keeps to the limit.
 */
function worstExcess(ticks: readonly Tick[], rate: number): number {
  let worst = 0;
  for (let i = 0; i < ticks.length; i++) {
    let bytes = 0;
    for (let j = i; j < ticks.length; j++) {
      bytes += ticks[j]!.bytes;
      worst = Math.max(worst, bytes - (rate * (ticks[j]!.at - ticks[i]!.at)) / 1000);
    }
  }
  return worst;
}

const total = (ticks: readonly Tick[]): number => ticks.reduce((sum, t) => sum + t.bytes, 0);

describe('--limit-rate', () => {
  const RATE = MiB;
  const BURST = burstFor(RATE);
  /** TLS records, frame headers and the control frames: far below 1% of the bytes, and the handshake's few KiB. */
  const overhead = (bytes: number): number => bytes / 100 + 16 * KiB;

  test('on the sender: over every stretch of the transfer, the proxy forwards at most rate x time + burst + one frame', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 3 * MiB;
    const file = await writeSample(src, 'paced.bin', size);
    const rx = await receiver(dst, ['--once']);
    const meter = await startMeter(rx.port);
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${meter.port}`, '--json', '--limit-rate', '1M'], 20_000);
      expect(tx.code, tx.stderr).toBe(0);
      expect(await rx.exit()).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'paced.bin')))).toEqual(fingerprint(file.content));
      const sent = total(meter.up);
      expect(sent).toBeGreaterThan(size);
      // A frame is at most the burst while limiting (the sender caps its chunk at it).
      const excess = worstExcess(meter.up, RATE);
      console.log(`sender limit ${RATE} B/s: ${sent} bytes up in ${((meter.up.at(-1)!.at - meter.up[0]!.at) / 1000).toFixed(2)} s, worst excess ${Math.round(excess)} B (allowed ${BURST * 2 + Math.round(overhead(sent))})`);
      expect(excess).toBeLessThanOrEqual(BURST + BURST + overhead(sent));
    } finally {
      await meter.close();
    }
  });

  test('on the receiver, for all its senders together: two at once take at least as long as the limit allows for both files', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 1.5 * MiB;
    const a = await writeSample(src, 'a.bin', size, 1);
    const b = await writeSample(src, 'b.bin', size, 2);
    const rx = await receiver(dst, ['--limit-rate', '1M']);
    const meter = await startMeter(rx.port);
    try {
      const to = `127.0.0.1:${meter.port}`;
      const [ta, tb] = await Promise.all([
        run(['send', a.path, '--to', to, '--json'], 20_000),
        run(['send', b.path, '--to', to, '--json'], 20_000),
      ]);
      expect([ta.code, tb.code], ta.stderr + tb.stderr).toEqual([0, 0]);
      expect(fingerprint(await readFile(join(dst, 'a.bin')))).toEqual(fingerprint(a.content));
      expect(fingerprint(await readFile(join(dst, 'b.bin')))).toEqual(fingerprint(b.content));
      // The receiver reads at the limit, but socket buffers on the way may hold megabytes
      // ahead of it: so the bound is on the whole, from the first byte up to the last
      // verdict down, which leaves only once the receiver has read every byte.
      const elapsedMs = meter.down.at(-1)!.at - meter.up[0]!.at;
      const allowed = (RATE * elapsedMs) / 1000 + BURST + 2 * 64 * KiB;
      console.log(`receiver limit ${RATE} B/s: ${2 * size} file bytes in ${(elapsedMs / 1000).toFixed(2)} s (${Math.round((2 * size * 1000) / elapsedMs)} B/s), allowed ${Math.round(allowed)} B`);
      expect(2 * size).toBeLessThanOrEqual(allowed);
    } finally {
      await meter.close();
      rx.child.kill('SIGINT');
      await rx.exit();
    }
  });

  test('on the sender, standard input (-): the same bound over every stretch', async () => {
    const dst = await tempDir();
    const content = pattern(1.5 * MiB, 9);
    const rx = await receiver(dst, ['--once']);
    const meter = await startMeter(rx.port);
    try {
      const tx = ferry(['send', '-', '--name', 'piped.bin', '--to', `127.0.0.1:${meter.port}`, '--json', '--limit-rate', '512K'], {}, { stdin: 'pipe' });
      tx.child.stdin!.end(content);
      expect(await tx.exit(20_000), tx.stderr()).toBe(0);
      expect(await rx.exit()).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'piped.bin')))).toEqual(fingerprint(content));
      const rate = 512 * KiB;
      expect(worstExcess(meter.up, rate)).toBeLessThanOrEqual(2 * burstFor(rate) + overhead(total(meter.up)));
    } finally {
      await meter.close();
    }
  });

  test.each([
    ['the sender', ['--limit-rate', '512K'], []],
    ['the receiver', [], ['--limit-rate', '512K']],
  ])('small files (the eager path), limited on %s: no faster than the limit allows', async (_side, sendArgs, receiveArgs) => {
    const rate = 512 * KiB;
    const src = await tempDir();
    const dst = await tempDir();
    const count = 24;
    const size = 60 * KiB;
    for (let i = 0; i < count; i++) await writeSample(src, `f${i}.bin`, size, i + 1);
    const rx = await receiver(dst, ['--once', ...receiveArgs]);
    const meter = await startMeter(rx.port);
    try {
      const tx = await run(['send', src, '--to', `127.0.0.1:${meter.port}`, '--json', ...sendArgs], 20_000);
      expect(tx.code, tx.stderr).toBe(0);
      expect(await rx.exit()).toBe(0);
      expect(rx.events.filter((e) => e.event === 'received' && e.directory !== true)).toHaveLength(count);
      const elapsedMs = meter.down.at(-1)!.at - meter.up[0]!.at;
      // One eager file (60 KiB) is the largest piece either side lets through in debt.
      expect(count * size).toBeLessThanOrEqual((rate * elapsedMs) / 1000 + burstFor(rate) + 64 * KiB);
    } finally {
      await meter.close();
    }
  });

  test('on the receiver, one sender: the same bound, and the file is whole', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 3 * MiB;
    const file = await writeSample(src, 'slow.bin', size);
    const rx = await receiver(dst, ['--once', '--limit-rate', '1M']);
    const meter = await startMeter(rx.port);
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${meter.port}`, '--json'], 20_000);
      expect(tx.code, tx.stderr).toBe(0);
      expect(await rx.exit()).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'slow.bin')))).toEqual(fingerprint(file.content));
      const elapsedMs = meter.down.at(-1)!.at - meter.up[0]!.at;
      expect(size).toBeLessThanOrEqual((RATE * elapsedMs) / 1000 + BURST + 64 * KiB);
    } finally {
      await meter.close();
    }
  });
});
