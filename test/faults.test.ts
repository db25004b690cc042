/**
 * Faults on live transfers, over real loopback sockets on port 0: the
 * connection cut at every phase of a file, a stream re-sliced into tiny
 * writes, silent, stalled and slow peers, a hundred senders at once, a full
 * disk, signals on either side, and a source file that changes while it is
 * sent. Real CLI processes and the library, through the fault proxy.
 *
 * Every case checks the exit code and the error code on each side that has
 * one, that nothing is left under the final name and no `.ferry-*.part` temp
 * file remains, and, where the receiver lives on, that it still serves a
 * correct sender.
 */
import { execFileSync } from 'node:child_process';
import { open, readFile, rm, stat, truncate, unlink, utimes } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test, type TestContext } from 'vitest';
import { receive, send, type FerryEvent, type Receiver, type SendSummary } from '../src/index.js';
import { SUPPORTED_ALGORITHMS } from '../src/hash.js';
import { FRAME_OVERHEAD, HEADER_SIZE } from '../src/protocol/constants.js';
import { encodeBye, encodeHello, encodeOffer } from '../src/protocol/messages.js';
import { ferry, receiver, run, type FerryProcess, TEST_CODE } from './support/cli.js';
import { fingerprint, listing, partials, pattern, sha256, tempDir, visible, within, writeSample } from './support/files.js';
import { startProxy, type FaultPlan, type FaultProxy } from './support/proxy.js';
import { rawConnect } from './support/raw.js';

const MiB = 1024 * 1024;
/** ferry's DATA frames carry 1 MiB each (README, "Chunk size"). */
const CHUNK = MiB;

// ---------------------------------------------------------------------------
// Wire arithmetic: where each frame of a one-file session starts.

/** ferry's HELLO, the same both ways: all the algorithms this build knows. */
const HELLO_BYTES = encodeHello(SUPPORTED_ALGORITHMS.map((a) => a.id)).length;
/** ACCEPT: 8-byte offset. */
const ACCEPT_BYTES = FRAME_OVERHEAD + 8;
/** END: two 32-byte digests (BLAKE3 and SHA-256 both take 32). */
const END_BYTES = FRAME_OVERHEAD + 2 * 32;

function offerBytes(name: string, size: number): number {
  return encodeOffer({ size, mtimeMs: 0, mode: 0o644, algorithm: SUPPORTED_ALGORITHMS[0]!.id, name }).length;
}

/** All DATA frames of a file of `size` bytes, header and end marker included. */
function dataBytes(size: number): number {
  return size + Math.ceil(size / CHUNK) * FRAME_OVERHEAD;
}

// ---------------------------------------------------------------------------
// Helpers.

const isTemp = (name: string): boolean => /^\.ferry-.*\.part$/.test(name);

/** Library events, with bounded waits on them. */
class Events {
  readonly list: FerryEvent[] = [];
  private readonly watchers = new Set<() => void>();

  readonly push = (event: FerryEvent): void => {
    this.list.push(event);
    for (const watcher of [...this.watchers]) watcher();
  };

  waitFor(match: (e: FerryEvent) => boolean, ms = 5000, what = 'a matching event'): Promise<FerryEvent> {
    return within(
      new Promise<FerryEvent>((resolve) => {
        const check = (): void => {
          const found = this.list.find(match);
          if (!found) return;
          this.watchers.delete(check);
          resolve(found);
        };
        this.watchers.add(check);
        check();
      }),
      ms,
      `${what} (events so far: ${JSON.stringify(this.list.filter((e) => e.event !== 'progress'))})`,
    );
  }

  errors(): Array<Extract<FerryEvent, { event: 'error' }>> {
    return this.list.filter((e): e is Extract<FerryEvent, { event: 'error' }> => e.event === 'error');
  }
}

/**
 * A library receiver. Its timeout is the default 30 s, so its PROGRESS
 * heartbeat (every timeout / 3, at most 5 s) never lands inside these short
 * transfers: the receiver-to-sender offsets below count no heartbeat.
 */
async function libReceiver(dir: string, extra: Partial<Parameters<typeof receive>[0]> = {}): Promise<{ rx: Receiver; events: Events }> {
  const events = new Events();
  const rx = await receive({ dir, host: '127.0.0.1', port: 0, timeoutMs: 30_000, insecure: true, onEvent: events.push, ...extra });
  return { rx, events };
}

/** A correct sender is served: a small file arrives whole (it is then removed, so listings stay comparable). */
/** `coded`: the receiver is a CLI child (encrypted, with the test code); library receivers here run --insecure. */
async function servesCorrectSender(port: number, dst: string, coded = false): Promise<void> {
  const src = await tempDir();
  const file = await writeSample(src, 'canary.bin', 4321);
  const summary = await within(send({ ...(coded ? { code: TEST_CODE } : { insecure: true }), files: [file.path], host: '127.0.0.1', port, timeoutMs: 10_000 }), 10_000, 'the canary transfer');
  expect(summary.exitCode, summary.error?.message).toBe(0);
  expect(fingerprint(await readFile(join(dst, 'canary.bin')))).toEqual(fingerprint(file.content));
  await unlink(join(dst, 'canary.bin'));
}

async function withProxy<T>(port: number, plan: FaultPlan, body: (proxy: FaultProxy) => Promise<T>, opts: { record?: boolean } = {}): Promise<T> {
  const proxy = await startProxy({ host: '127.0.0.1', port }, plan, opts);
  try {
    return await body(proxy);
  } finally {
    await proxy.close();
  }
}

type Json = Record<string, unknown>;
const errorsOf = (proc: FerryProcess): Json[] => proc.events.filter((e) => e.event === 'error');
const lastError = (events: Json[]): Json | undefined => events.filter((e) => e.event === 'error').at(-1);

/** The resident-set high-water mark of a live process, in bytes (Linux). */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (!kib) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib[1]) * 1024;
}

/** A small deterministic PRNG for sizes and names (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// 1. Connection cuts.

describe('the connection cut at every phase of a file (library on both sides, through the proxy)', () => {
  const NAME = 'cut.bin';
  /** Four DATA frames: 1 MiB, 1 MiB, 1 MiB, 777 bytes. */
  const SIZE = 3 * MiB + 777;
  const OFFER_AT = HELLO_BYTES;
  const DATA_AT = OFFER_AT + offerBytes(NAME, SIZE);
  const END_AT = DATA_AT + dataBytes(SIZE);
  const HALF = Math.floor(SIZE / 2);
  /** The stream offset of byte HALF of the file: one full frame, then the header of the second. */
  const HALF_AT = DATA_AT + (HEADER_SIZE + CHUNK + 1) + HEADER_SIZE + (HALF - CHUNK);

  /** Runs one cut and returns both sides' view of it. */
  async function cutRun(plan: FaultPlan, record = false): Promise<{ summary: SendSummary; events: Events; dst: string; content: Buffer; rx: Receiver; recorded: Buffer }> {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, NAME, SIZE);
    const { rx, events } = await libReceiver(dst);
    let recorded: Buffer = Buffer.alloc(0);
    const summary = await withProxy(
      rx.port,
      plan,
      async (proxy) => {
        const result = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: proxy.port, timeoutMs: 5000 }), 10_000, 'send');
        await proxy.closedConnections(1, 5000);
        recorded = proxy.recorded();
        return result;
      },
      { record },
    );
    return { summary, events, dst, content: file.content, rx, recorded };
  }

  const cases: Array<{ label: string; at: number; rxCode: string; named: boolean }> = [
    { label: 'mid-header of the first frame (3 bytes)', at: 3, rxCode: 'ERR_TRUNCATED', named: false },
    { label: 'mid-OFFER', at: OFFER_AT + 10, rxCode: 'ERR_TRUNCATED', named: false },
    { label: 'mid-DATA frame (1000 bytes into the first payload)', at: DATA_AT + HEADER_SIZE + 1000, rxCode: 'ERR_TRUNCATED', named: true },
    { label: 'at 50% of the file (inside the second DATA frame)', at: HALF_AT, rxCode: 'ERR_TRUNCATED', named: true },
    { label: 'just before the END frame (every DATA frame delivered)', at: END_AT, rxCode: 'ERR_CONNECTION_LOST', named: true },
  ];

  for (const c of cases) {
    test(`cut ${c.label}: sender exit 1 ERR_CONNECTION_LOST, receiver ${c.rxCode}, nothing visible kept, receiver serves on`, async () => {
      const { summary, events, dst, rx, recorded } = await cutRun({ cutAfter: c.at }, true);
      try {
        expect(recorded.length).toBe(c.at);
        expect(summary.exitCode).toBe(1);
        expect(summary.error?.code).toBe('ERR_CONNECTION_LOST');
        expect(summary.files[0]).toMatchObject({ name: NAME, code: 'ERR_CONNECTION_LOST' });
        const error = await events.waitFor((e) => e.event === 'error', 5000, "the receiver's error");
        expect(error).toMatchObject({ code: c.rxCode, exitCode: 1 });
        if (c.named) expect(error).toMatchObject({ name: NAME });
        expect(events.list.some((e) => e.event === 'received')).toBe(false);
        // Nothing visible; a file cut once its data began is kept hidden, for a resume.
        expect(await visible(dst)).toEqual([]);
        expect(await partials(dst)).toHaveLength(c.named ? 1 : 0);
        await servesCorrectSender(rx.port, dst);
        expect(events.errors()).toHaveLength(1);
      } finally {
        await rx.close();
      }
    });
  }

  test('the offsets above are where the frames are: the recorded stream has END right after the DATA', async () => {
    const { summary, dst, rx, recorded } = await cutRun({ cutAfter: END_AT + END_BYTES }, true);
    try {
      expect(summary.exitCode).toBe(1);
      expect(recorded.length).toBe(END_AT + END_BYTES);
      expect(recorded.readUInt16BE(OFFER_AT + 2)).toBe(0x0010);
      expect(recorded.readUInt16BE(DATA_AT + 2)).toBe(0x0020);
      expect(recorded.readUInt32BE(DATA_AT + 4)).toBe(CHUNK);
      expect(recorded.readUInt16BE(HALF_AT - (HALF - CHUNK) - HEADER_SIZE + 2)).toBe(0x0020);
      expect(recorded.readUInt16BE(END_AT + 2)).toBe(0x0021);
      expect(recorded.at(-1)).toBe(0xc9);
      await rm(join(dst, NAME), { force: true });
    } finally {
      await rx.close();
    }
  });

  test('cut at 0 bytes (right away): sender exit 1 ERR_CONNECTION_LOST; the receiver reports at most a lost connection, keeps nothing, serves on', async () => {
    const { summary, events, dst, rx } = await cutRun({ cutAfter: 0 });
    try {
      expect(summary.exitCode).toBe(1);
      expect(summary.error?.code).toBe('ERR_CONNECTION_LOST');
      // The proxy may cut before its upstream connection even reaches the
      // receiver: then the receiver has nothing to report.
      await servesCorrectSender(rx.port, dst);
      for (const e of events.errors()) expect(e).toMatchObject({ code: 'ERR_CONNECTION_LOST', exitCode: 1 });
      expect(events.errors().length).toBeLessThanOrEqual(1);
      console.log(`cut at 0: the receiver reported ${JSON.stringify(events.errors().map((e) => e.code))}`);
      expect(await listing(dst)).toEqual([]);
    } finally {
      await rx.close();
    }
  });

  test('cut just after END (verdict lost): the receiver keeps the file only verified; the sender exits 1 ERR_CONNECTION_LOST', async () => {
    const { summary, events, dst, content, rx } = await cutRun({ cutAfter: END_AT + END_BYTES });
    try {
      expect(summary.exitCode).toBe(1);
      expect(summary.error?.code).toBe('ERR_CONNECTION_LOST');
      // The receiver got every byte and END: it decides before it learns of the cut.
      await events.waitFor((e) => (e.event === 'received' || e.event === 'error') && e.name === NAME, 5000, "the receiver's outcome");
      const names = await listing(dst);
      expect(names.filter(isTemp)).toEqual([]);
      if (names.includes(NAME)) {
        // Kept: then it is the verified file, byte for byte.
        expect(fingerprint(await readFile(join(dst, NAME)))).toEqual(fingerprint(content));
      }
      console.log(`cut after END: receiver kept the file: ${names.includes(NAME)}; events: ${JSON.stringify(events.list.filter((e) => e.event === 'received' || e.event === 'error'))}`);
      expect(names).toEqual([NAME]);
      await rm(join(dst, NAME));
      await servesCorrectSender(rx.port, dst);
    } finally {
      await rx.close();
    }
  });

  test('VERDICT cut after its first byte (cutAfterReverse): the receiver keeps the verified file; the sender exits 1 ERR_TRUNCATED', async () => {
    const { summary, events, dst, content, rx } = await cutRun({ cutAfterReverse: HELLO_BYTES + ACCEPT_BYTES + 1 });
    try {
      expect(summary.exitCode).toBe(1);
      expect(summary.error?.code).toBe('ERR_TRUNCATED');
      expect(summary.files[0]).toMatchObject({ name: NAME, code: 'ERR_TRUNCATED' });
      await events.waitFor((e) => e.event === 'received' && e.name === NAME, 5000, "the receiver's received event");
      // The session then ends without BYE.
      await events.waitFor((e) => e.event === 'error', 5000, "the receiver's error");
      expect(events.errors().map((e) => [e.code, e.exitCode])).toEqual([['ERR_CONNECTION_LOST', 1]]);
      expect(await listing(dst)).toEqual([NAME]);
      expect(fingerprint(await readFile(join(dst, NAME)))).toEqual(fingerprint(content));
      await rm(join(dst, NAME));
      await servesCorrectSender(rx.port, dst);
    } finally {
      await rx.close();
    }
  });

  // What the receiver says must match what it kept: a script reading its
  // events must see `received` for a file it saved, and no error naming it.
  test.each([
    ['cut just after END', { cutAfter: END_AT + END_BYTES }],
    ['VERDICT cut after its first byte', { cutAfterReverse: HELLO_BYTES + ACCEPT_BYTES + 1 }],
  ] as Array<[string, FaultPlan]>)('%s: the receiver reports the file it kept as received, and no error names it', async (_label, plan) => {
    const { events, dst, rx } = await cutRun(plan);
    try {
      await events.waitFor((e) => e.event === 'error', 5000, "the receiver's error (the session ended without BYE)");
      expect(await listing(dst)).toEqual([NAME]);
      expect(events.list.filter((e) => e.event === 'received').map((e) => e.event === 'received' && e.name)).toEqual([NAME]);
      expect(events.errors().filter((e) => e.name === NAME)).toEqual([]);
    } finally {
      await rx.close();
    }
  });
});

// ---------------------------------------------------------------------------
// 2. Re-sliced streams.

describe('the stream re-sliced into tiny writes', () => {
  test("one byte per write (slice 'byte'): verified, identical bytes", async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'bytewise.bin', 3 * 1024);
    const { rx, events } = await libReceiver(dst);
    try {
      await withProxy(rx.port, { slice: 'byte' }, async (proxy) => {
        const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: proxy.port }), 20_000, 'send');
        expect(summary.exitCode, summary.error?.message).toBe(0);
        expect(summary.files[0]?.code).toBe('OK');
        const total = HELLO_BYTES + offerBytes('bytewise.bin', 3 * 1024) + dataBytes(3 * 1024) + END_BYTES + encodeBye().length;
        await proxy.closedConnections(1, 5000);
        expect(proxy.forwarded.up).toBe(total);
        expect(proxy.writes.up).toBe(total);
      });
      expect(fingerprint(await readFile(join(dst, 'bytewise.bin')))).toEqual(fingerprint(file.content));
      expect(events.errors()).toEqual([]);
      expect(await listing(dst)).toEqual(['bytewise.bin']);
    } finally {
      await rx.close();
    }
  });

  test('random slice sizes from a seed, several files and SHA-256: all verified, identical bytes', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const files = await Promise.all([
      writeSample(src, 'r1.bin', 40_000, 11),
      writeSample(src, 'r-empty.bin', 0),
      writeSample(src, 'r2 ünï.bin', 9_999, 12),
    ]);
    const { rx, events } = await libReceiver(dst);
    try {
      await withProxy(rx.port, { slice: { mode: 'random', seed: 0x5eed, maxSlice: 97 } }, async (proxy) => {
        const summary = await within(send({ insecure: true, files: files.map((f) => f.path), host: '127.0.0.1', port: proxy.port, hash: 'sha256' }), 20_000, 'send');
        expect(summary.exitCode, summary.error?.message).toBe(0);
        expect(summary.files.map((f) => f.code)).toEqual(['OK', 'OK', 'OK']);
        expect(summary.files.map((f) => f.hash?.digest)).toEqual(files.map((f) => sha256(f.content)));
        await proxy.closedConnections(1, 5000);
        // Many more writes than frames: the slicing really happened.
        expect(proxy.writes.up).toBeGreaterThan(proxy.forwarded.up / 97);
      });
      for (const f of files) {
        expect(fingerprint(await readFile(join(dst, f.path.slice(src.length + 1))))).toEqual(fingerprint(f.content));
      }
      expect(events.errors()).toEqual([]);
    } finally {
      await rx.close();
    }
  });
});

// ---------------------------------------------------------------------------
// 3. Idle, stalled and slow peers (real CLI).

describe('idle peers and slow links (CLI, --timeout 1)', () => {
  test('a client that connects and says nothing: dropped with ERR_TIMEOUT; the receiver then serves a correct sender (--once: exit 0)', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const rx = await receiver(dst, ['--once', '--timeout', '1']);
    const silent = await rawConnect(rx.port);
    expect(await silent.frame(0, 5000)).toMatchObject({ type: 0x00ff, code: 'ERR_TIMEOUT' });
    await silent.closed(5000);
    const error = await rx.waitFor((e) => e.event === 'error', 5000);
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT', exitCode: 1 });
    expect(error.name).toBeUndefined();
    // A port scanner does not claim a --once receiver: the next sender does.
    const file = await writeSample(src, 'after-silence.bin', 5000);
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json', '--timeout', '5']);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await rx.exit(10_000)).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'after-silence.bin')))).toEqual(fingerprint(file.content));
    expect(await listing(dst)).toEqual(['after-silence.bin']);
  });

  test('a sender that stops mid-stream (blackhole): receiver ERR_TIMEOUT, sender exit 1 ERR_TIMEOUT within its --timeout; only the hidden partial kept; the receiver serves on', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 4 * MiB;
    const file = await writeSample(src, 'stalled.bin', size);
    const rx = await receiver(dst, ['--timeout', '1']);
    const blackholeAfter = HELLO_BYTES + offerBytes('stalled.bin', size) + HEADER_SIZE + CHUNK + 1 + HEADER_SIZE + 500_000;
    await withProxy(rx.port, { blackholeAfter }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--timeout', '1']);
      await tx.waitFor((e) => e.event === 'start', 10_000);
      // --timeout 1, plus the 2 s an ABORT may take to flush, plus slack.
      expect(await tx.exit(6000)).toBe(1);
      expect(lastError(tx.events)).toMatchObject({ code: 'ERR_TIMEOUT', exitCode: 1 });
      const error = await rx.waitFor((e) => e.event === 'error', 5000);
      expect(error).toMatchObject({ code: 'ERR_TIMEOUT', exitCode: 1, name: 'stalled.bin' });
      expect(proxy.forwarded.up).toBe(blackholeAfter);
    });
    expect(await visible(dst)).toEqual([]);
    expect(await partials(dst)).toHaveLength(1);
    await servesCorrectSender(rx.port, dst, true);
    expect(errorsOf(rx)).toHaveLength(1);
    rx.child.kill('SIGINT');
    expect(await rx.exit()).toBe(130);
  });

  test('a receiver that accepts and never answers: the sender (--timeout 1) exits 1 with ERR_TIMEOUT', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'unanswered.bin', 1000);
    const sockets = new Set<Socket>();
    const mute = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${(mute.address() as AddressInfo).port}`, '--json', '--timeout', '1'], 8000);
      expect(tx.code).toBe(1);
      expect(lastError(tx.events)).toMatchObject({ code: 'ERR_TIMEOUT', exitCode: 1 });
      expect(sockets.size).toBe(1);
      console.log(`mute receiver: the sender gave up after ${Date.now() - started} ms (process start included)`);
    } finally {
      for (const s of sockets) s.destroy();
      await within(new Promise((resolve) => mute.close(resolve)), 5000, 'closing the mute server');
    }
  });

  test('a slow but moving transfer is not killed: 1 MiB at ~400 KiB/s with --timeout 1 on both sides, exit 0', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'slow.bin', MiB);
    const rx = await receiver(dst, ['--once', '--timeout', '1']);
    await withProxy(rx.port, { bytesPerSecond: 400 * 1024 }, async (proxy) => {
      const started = Date.now();
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--timeout', '1'], 15_000);
      const rxCode = await rx.exit(10_000);
      console.log(`slow link: sender exit ${tx.code} after ${Date.now() - started} ms, ${proxy.forwarded.up} bytes forwarded; sender errors ${JSON.stringify(errorsOf({ events: tx.events } as FerryProcess))}, receiver errors ${JSON.stringify(errorsOf(rx))}`);
      expect(lastError(tx.events)).toBeUndefined();
      expect(tx.code, tx.stderr).toBe(0);
      expect(rxCode).toBe(0);
    });
    expect(await listing(dst)).toEqual(['slow.bin']);
    expect(fingerprint(await readFile(join(dst, 'slow.bin')))).toEqual(fingerprint(file.content));
  });
});

// ---------------------------------------------------------------------------
// 4. Load.

describe('load', () => {
  test('100 senders at once into one receiver (a CLI child): all verified, none mixed up; its peak RSS stays bounded', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const rand = prng(100);
    const alphabet = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_ .,+=()äöüéßñ日本語Ωλ'];
    const edges = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * MiB];
    const specs = Array.from({ length: 100 }, (_, i) => {
      const size = i < edges.length ? edges[i]! : Math.floor(rand() * (2 * MiB + 1));
      let stem = '';
      const length = 1 + Math.floor(rand() * 24);
      for (let k = 0; k < length; k++) stem += alphabet[Math.floor(rand() * alphabet.length)];
      return { name: `${i}-${stem}.bin`, size };
    });
    const files = await Promise.all(specs.map((s, i) => writeSample(src, s.name, s.size, 1000 + i)));
    const total = specs.reduce((sum, s) => sum + s.size, 0);
    const rx = await receiver(dst);
    const results = await within(
      // Encrypted, as the CLI receiver is: 100 handshakes at once pass the wrong-code limiter a few at a time.
      Promise.all(files.map((f) => send({ code: TEST_CODE, files: [f.path], host: '127.0.0.1', port: rx.port, timeoutMs: 20_000 }))),
      25_000,
      '100 concurrent sends',
    );
    await rx.waitFor(() => rx.events.filter((e) => e.event === 'received').length >= specs.length, 10_000);
    const hwm = await peakRss(rx.child.pid!);
    console.log(`load: 100 concurrent senders, ${(total / MiB).toFixed(1)} MiB in all: receiver peak RSS (VmHWM) ${(hwm / MiB).toFixed(1)} MiB`);
    rx.child.kill('SIGINT');
    expect(await rx.exit()).toBe(130);

    expect(results.map((r) => r.exitCode)).toEqual(specs.map(() => 0));
    expect(errorsOf(rx)).toEqual([]);
    expect(await listing(dst)).toEqual(specs.map((s) => s.name).sort());
    const received = new Map(rx.events.filter((e) => e.event === 'received').map((e) => [e.name as string, e]));
    for (const [i, f] of files.entries()) {
      const name = specs[i]!.name;
      expect(fingerprint(await readFile(join(dst, name))), name).toEqual(fingerprint(f.content));
      // Each receiver record belongs to its own sender: same digest, same size.
      expect(received.get(name)).toMatchObject({ bytes: specs[i]!.size, hash: results[i]!.files[0]!.hash });
    }
    expect(hwm).toBeLessThan(300 * MiB);
  });
});

// ---------------------------------------------------------------------------
// 5. A full disk (a small tmpfs as --dir).

async function mountTmpfs(ctx: TestContext, size: string): Promise<string> {
  const dir = await tempDir('ferry-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    const text = String((err as { stderr?: Buffer }).stderr ?? err).trim();
    if (/EPERM|permission denied|not permitted|must be superuser|only root/i.test(text)) {
      ctx.skip(`cannot mount a tmpfs here (EPERM: not root?): ${text}`);
    }
    throw err;
  }
  return dir;
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

/** Stops a CLI child that is still running (a failed assertion left it), so its folder can be unmounted. */
async function stopIfRunning(proc: FerryProcess | undefined): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGKILL');
  await proc.exit(5000).catch(() => {});
}

/** Fills the file system of `dir` with a file named `filler` until ENOSPC; returns the bytes it took. */
async function fillUp(dir: string): Promise<number> {
  const handle = await open(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 * 1024, 0xee);
  let written = 0;
  try {
    for (let i = 0; i < 1000; i++) {
      try {
        written += (await handle.write(block)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return written;
        throw err;
      }
    }
    throw new Error('the file system never filled up');
  } finally {
    await handle.close();
  }
}

describe('a full disk (4 MiB tmpfs as --dir)', () => {
  test('a file that cannot fit is refused before any data moves: exit 4 ERR_TOO_LARGE on both sides; the receiver serves on', async (ctx) => {
    const src = await tempDir();
    const mnt = await mountTmpfs(ctx, '4m');
    let rx: (FerryProcess & { port: number }) | undefined;
    try {
      rx = await receiver(mnt);
      const file = await writeSample(src, 'too-big.bin', 6 * MiB);
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json']);
      expect(tx.code).toBe(4);
      expect(lastError(tx.events)).toMatchObject({ code: 'ERR_TOO_LARGE', exitCode: 4, name: 'too-big.bin' });
      const error = await rx.waitFor((e) => e.event === 'error', 5000);
      expect(error).toMatchObject({ code: 'ERR_TOO_LARGE', exitCode: 4, name: 'too-big.bin' });
      expect(rx.events.some((e) => e.event === 'start')).toBe(false);
      expect(await listing(mnt)).toEqual([]);
      await servesCorrectSender(rx.port, mnt, true);
      rx.child.kill('SIGINT');
      expect(await rx.exit()).toBe(130);
    } finally {
      await stopIfRunning(rx);
      unmount(mnt);
    }
  });

  test('the disk fills up mid-file (ENOSPC): receiver ERR_IO, the sender is told (exit 1 ERR_IO), nothing left on the tmpfs, the receiver then takes a file that fits', async (ctx) => {
    const src = await tempDir();
    const mnt = await mountTmpfs(ctx, '4m');
    let rx: (FerryProcess & { port: number }) | undefined;
    try {
      rx = await receiver(mnt);
      const receiving = rx;
      // 3 MiB fits the 4 MiB at offer time; another writer takes the space once it is accepted.
      const file = await writeSample(src, 'fits-at-offer.bin', 3 * MiB);
      await withProxy(receiving.port, { bytesPerSecond: MiB }, async (proxy) => {
        const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
        await receiving.waitFor((e) => e.event === 'start', 10_000);
        const filled = await fillUp(mnt);
        expect(filled).toBeGreaterThan(0);
        expect(await tx.exit(10_000)).toBe(1);
        expect(lastError(tx.events)).toMatchObject({ code: 'ERR_IO', exitCode: 1 });
        const error = await receiving.waitFor((e) => e.event === 'error', 5000);
        expect(error).toMatchObject({ code: 'ERR_IO', exitCode: 1, name: 'fits-at-offer.bin' });
        expect(proxy.forwarded.up).toBeLessThan(3 * MiB);
      });
      expect(await listing(mnt)).toEqual(['filler']);
      await unlink(join(mnt, 'filler'));
      await servesCorrectSender(receiving.port, mnt, true);
      expect(await listing(mnt)).toEqual([]);
      expect(errorsOf(receiving)).toHaveLength(1);
      receiving.child.kill('SIGINT');
      expect(await receiving.exit()).toBe(130);
    } finally {
      await stopIfRunning(rx);
      unmount(mnt);
    }
  });
});

// ---------------------------------------------------------------------------
// 6. Signals mid-transfer (the sender-SIGINT case is in cli.e2e.test.ts).

describe('signals mid-transfer (throttled so the data is surely moving)', () => {
  const SIZE = 32 * MiB;
  const RATE = 8 * MiB;
  const PEER_CODES = ['ERR_INTERRUPTED', 'ERR_CONNECTION_LOST'];

  test('sender SIGTERM: it exits 143 (ERR_SIGTERM); the receiver exits 1 with ERR_INTERRUPTED or ERR_CONNECTION_LOST; only the hidden partial kept', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'sigterm-sender.bin', SIZE);
    const rx = await receiver(dst, ['--once']);
    const error = await withProxy(rx.port, { bytesPerSecond: RATE }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      await rx.waitFor((e) => e.event === 'progress' && (e.done as number) > 0, 10_000);
      expect(proxy.forwarded.up).toBeLessThan(SIZE / 2);
      tx.child.kill('SIGTERM');
      expect(await tx.exit()).toBe(143);
      expect(lastError(tx.events)).toMatchObject({ code: 'ERR_SIGTERM', exitCode: 143 });
      expect(await rx.exit()).toBe(1);
      return lastError(rx.events);
    });
    console.log(`sender SIGTERM: the receiver reported ${JSON.stringify(error)}`);
    expect(await visible(dst)).toEqual([]);
    expect(await partials(dst)).toHaveLength(1);
    expect(error).toMatchObject({ exitCode: 1, name: 'sigterm-sender.bin' });
    // A signalled sender tells its peer (README: "the peer is told").
    expect(PEER_CODES).toContain(error?.code);
  });

  test.each([
    ['SIGINT', 130, 'ERR_SIGINT'],
    ['SIGTERM', 143, 'ERR_SIGTERM'],
  ] as const)('receiver %s: it exits %i (%s); the sender exits 1 with ERR_INTERRUPTED or ERR_CONNECTION_LOST; only the hidden partial kept', async (signal, exitCode, code) => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, `${signal}-receiver.bin`, SIZE);
    const rx = await receiver(dst);
    const error = await withProxy(rx.port, { bytesPerSecond: RATE }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      await rx.waitFor((e) => e.event === 'progress' && (e.done as number) > 0, 10_000);
      expect(proxy.forwarded.up).toBeLessThan(SIZE / 2);
      rx.child.kill(signal);
      expect(await rx.exit()).toBe(exitCode);
      expect(lastError(rx.events)).toMatchObject({ code, exitCode });
      expect(await tx.exit()).toBe(1);
      return lastError(tx.events);
    });
    console.log(`receiver ${signal}: the sender reported ${JSON.stringify(error)}`);
    expect(await visible(dst)).toEqual([]);
    expect(await partials(dst)).toHaveLength(1);
    expect(error).toMatchObject({ exitCode: 1 });
    expect(PEER_CODES).toContain(error?.code);
  });
});

// ---------------------------------------------------------------------------
// 7. The source file changes while it is sent.

describe('the source file changes while it is being sent (throttled; changed once data is flowing)', () => {
  const SIZE = 16 * MiB;
  const RATE = 8 * MiB;
  /** A round mtime, so that it can be put back exactly. */
  const MTIME = 1_700_000_000;

  async function changeRun(
    change: (path: string) => Promise<void>,
    size = SIZE,
  ): Promise<{ tx: FerryProcess; txCode: number; rx: FerryProcess; rxCode: number; dst: string; original: Buffer }> {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'changing.bin', size);
    await utimes(file.path, MTIME, MTIME);
    const rx = await receiver(dst, ['--once']);
    return withProxy(rx.port, { bytesPerSecond: RATE }, async (proxy) => {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--hash', 'sha256']);
      await rx.waitFor((e) => e.event === 'progress' && (e.done as number) > 0, 10_000);
      // Mid-stream: the receiver has bytes and most of the file is still to come.
      expect(proxy.forwarded.up).toBeLessThan(size / 2);
      await change(file.path);
      const txCode = await tx.exit(15_000);
      const rxCode = await rx.exit(15_000);
      return { tx, txCode, rx, rxCode, dst, original: file.content };
    });
  }

  /** A failed transfer: exit 1 ERR_SOURCE_CHANGED (exit 3 an integrity failure at worst), never 0; nothing kept. */
  async function expectFailed(r: Awaited<ReturnType<typeof changeRun>>): Promise<void> {
    console.log(`sender exit ${r.txCode} ${JSON.stringify(lastError(r.tx.events))}; receiver exit ${r.rxCode} ${JSON.stringify(lastError(r.rx.events))}`);
    expect(r.txCode).not.toBe(0);
    expect([1, 3]).toContain(r.txCode);
    const error = lastError(r.tx.events);
    if (r.txCode === 1) expect(error).toMatchObject({ code: 'ERR_SOURCE_CHANGED', exitCode: 1 });
    else expect(['ERR_HASH_MISMATCH', 'ERR_SIZE_MISMATCH']).toContain(error?.code);
    expect(r.tx.events.some((e) => e.event === 'sent')).toBe(false);
    expect(await listing(r.dst)).toEqual([]);
    expect(r.rx.events.some((e) => e.event === 'received')).toBe(false);
    // The receiver's session failed too, and it was told why.
    expect(r.rxCode).toBe(r.txCode);
    expect(lastError(r.rx.events)).toMatchObject({ code: error?.code, exitCode: r.txCode, name: 'changing.bin' });
  }

  /** Success is allowed only if what the receiver saved is exactly what the sender reported. */
  async function expectNeverFalseSuccess(r: Awaited<ReturnType<typeof changeRun>>, rewritten: Buffer): Promise<string> {
    const sent = r.tx.events.find((e) => e.event === 'sent') as { hash: { algorithm: string; digest: string } } | undefined;
    if (r.txCode !== 0) {
      await expectFailed(r);
      return `failed: sender exit ${r.txCode} ${String(lastError(r.tx.events)?.code)}, receiver exit ${r.rxCode} ${String(lastError(r.rx.events)?.code)}`;
    }
    expect(r.rxCode).toBe(0);
    expect(sent?.hash.algorithm).toBe('sha256');
    const saved = await readFile(join(r.dst, 'changing.bin'));
    expect(fingerprint(saved)).toEqual({ bytes: SIZE, sha256: sent?.hash.digest });
    expect(r.rx.events.find((e) => e.event === 'received')).toMatchObject({ hash: sent?.hash });
    const what = saved.equals(r.original) ? 'the original bytes' : saved.equals(rewritten) ? 'the rewritten bytes' : 'a MIX of original and rewritten bytes';
    return `succeeded (exit 0 both sides); the receiver saved ${what}, and its digest is the one the sender reported`;
  }

  test('it grows: sender exit 1 ERR_SOURCE_CHANGED (never 0), the receiver is told, nothing kept', async () => {
    const r = await changeRun(async (path) => {
      const handle = await open(path, 'a');
      await handle.write(pattern(MiB, 99));
      await handle.close();
    });
    await expectFailed(r);
  });

  test('it shrinks: sender exit 1 ERR_SOURCE_CHANGED (never 0), the receiver is told, nothing kept', async () => {
    // Larger, so that the sender is surely still reading (with frames queued behind it) when the file shrinks.
    const r = await changeRun((path) => truncate(path, MiB), 2 * SIZE);
    await expectFailed(r);
  });

  test('it is rewritten in place with other bytes of the same size: never a success whose saved bytes differ from the reported digest', async () => {
    const rewritten = pattern(SIZE, 4242);
    const r = await changeRun(async (path) => {
      const handle = await open(path, 'r+');
      await handle.write(rewritten, 0, SIZE, 0);
      await handle.close();
    });
    console.log(`same-size rewrite: ${await expectNeverFalseSuccess(r, rewritten)}`);
  });

  test('it is rewritten in place with the same size and its mtime put back: never a success whose saved bytes differ from the reported digest', async () => {
    const rewritten = pattern(SIZE, 4343);
    const r = await changeRun(async (path) => {
      const handle = await open(path, 'r+');
      await handle.write(rewritten, 0, SIZE, 0);
      await handle.close();
      await utimes(path, MTIME, MTIME);
      expect((await stat(path)).mtimeMs).toBe(MTIME * 1000);
    });
    console.log(`same-size rewrite, mtime restored: ${await expectNeverFalseSuccess(r, rewritten)}`);
  });
});
