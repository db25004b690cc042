/**
 * Strangers before authentication (docs/security.md, sections 5 and 8), in
 * process over loopback: junk shares, fair tokens across source addresses,
 * and peer text that must never be shown. Distinct sources are loopback
 * aliases (127.0.0.2, ...): the honest side dials 127.0.0.1 as usual.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, send, type Receiver } from '../src/index.js';
import type { FerryEvent } from '../src/events.js';
import { FrameType } from '../src/protocol/constants.js';
import { FerryError } from '../src/protocol/errors.js';
import { encodeAbort, encodeFrame, encodeHello } from '../src/protocol/messages.js';
import { CodeGuard, secureServer } from '../src/secure/index.js';
import { M_HEX, passwordScalar, spake2Start } from '../src/secure/spake2.js';
import { fingerprint, tempDir, within, writeSample } from './support/files.js';
import { rawConnect, type RawPeer } from './support/raw.js';

const CODE = '7-orbit-velvet-cactus';
const WRONG = '8-orbit-velvet-cactus';
const WAIT_MS = 10_000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startReceiver(dir: string, extra: Parameters<typeof receive>[0] = {}): Promise<{ rx: Receiver; events: FerryEvent[] }> {
  const events: FerryEvent[] = [];
  const rx = await receive({ dir, host: '127.0.0.1', port: 0, code: CODE, onEvent: (e) => events.push(e), ...extra });
  cleanups.push(() => rx.close());
  return { rx, events };
}

/** A plain socket pair on loopback, the server end accepted. */
async function socketPair(): Promise<{ client: Socket; server: Socket }> {
  let accept!: (socket: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const listener = createServer((socket) => accept(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const server = await within(accepted, WAIT_MS, 'accept');
  for (const s of [client, server]) {
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
  }
  cleanups.push(() => listener.close());
  return { client, server };
}

async function settled<T>(promise: Promise<T>): Promise<T | FerryError> {
  try {
    return await within(promise, WAIT_MS, 'handshake');
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
}

/** ESC, BEL, a newline and a forged success line: what a stranger would like a terminal to show. */
const FORGED = '\x1b[2J\x07\nreceived secret.txt 1 MiB verified';
function clean(text: string): void {
  expect(text).not.toMatch(/[\x1b\x07\n]/);
  expect(text).not.toContain('verified');
  expect(text).not.toContain('secret.txt');
}

describe('junk shares', () => {
  test('an off-curve share and a share equal to w·M are refused with ERR_MALFORMED_PAYLOAD and charged to the guard', async () => {
    const w = await passwordScalar(CODE);
    const onCurve = Buffer.from(spake2Start('A', w).share);
    const offCurve = Buffer.from(onCurve);
    offCurve[64]! ^= 0x01;
    const wM = Buffer.from(p256.Point.fromHex(M_HEX).multiply(w).toBytes(false));
    const guard = new CodeGuard(CODE);
    for (const [i, share] of [offCurve, wM].entries()) {
      const { client, server } = await socketPair();
      const done = settled(secureServer(server, guard, { timeoutMs: 5000 }));
      client.write(encodeFrame(FrameType.Pake, share));
      expect(await done).toMatchObject({ code: 'ERR_MALFORMED_PAYLOAD' });
      expect(guard.failures).toBe(i + 1);
    }
  });
});

describe('bounds on the handshake', () => {
  test('the whole-handshake bound: a peer silent after pB is cut at totalMs (ERR_TIMEOUT) and its token is spent', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const done = settled(secureServer(server, guard, { timeoutMs: 20_000, totalMs: 300 }));
    client.write(encodeFrame(FrameType.Pake, spake2Start('A', await passwordScalar(WRONG)).share));
    expect(await done).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(guard.failures).toBe(1);
  });

  test('a wait for a token that outlives the bound ends in ERR_RATE_LIMITED, and costs nothing', async () => {
    const guard = new CodeGuard(CODE, { burst: 1, refillMs: 60_000 });
    const held = guard.begin();
    expect(held).not.toBeNull();
    const { client, server } = await socketPair();
    const done = settled(secureServer(server, guard, { timeoutMs: 20_000, totalMs: 300 }));
    client.write(encodeFrame(FrameType.Pake, spake2Start('A', await passwordScalar(CODE)).share));
    expect(await done).toMatchObject({ code: 'ERR_RATE_LIMITED' });
    held!.settle(false);
    expect(guard.failures).toBe(0);
  });

  test('a fake receiver that sends more than pB and cB in one go: the sender stops with ERR_UNEXPECTED_FRAME instead of buffering it', async () => {
    const w = await passwordScalar(CODE);
    const flood = Buffer.concat([encodeFrame(FrameType.Pake, spake2Start('B', w).share), encodeFrame(FrameType.Confirm, Buffer.alloc(32)), Buffer.alloc(1024 * 1024, 0x5a)]);
    const listener = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.write(flood));
      cleanups.push(() => socket.destroy());
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => listener.close());
    const file = await writeSample(await tempDir(), 'x.bin', 10);
    const port = (listener.address() as AddressInfo).port;
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port, retries: 0 }), WAIT_MS, 'send');
    expect(summary.error).toMatchObject({ code: 'ERR_UNEXPECTED_FRAME' });
  });
});

/**
 * A stranger that guesses wrong codes without pause, from `localAddress`:
 * `lanes` connections at a time, each a PAKE for a wrong code, then a
 * CONFIRM that cannot be right (or a junk share only, with `junk`).
 */
function attacker(port: number, localAddress: string, options: { lanes?: number; junk?: boolean } = {}): { attempts(): number; stop(): Promise<void> } {
  let running = true;
  let attempts = 0;
  const peers = new Set<RawPeer>();
  const guess = async (): Promise<void> => {
    const w = await passwordScalar(WRONG);
    while (running) {
      const peer = await rawConnect(port, '127.0.0.1', { localAddress }).catch(() => null);
      if (!peer) continue;
      peers.add(peer);
      attempts++;
      const share = Buffer.from(spake2Start('A', w).share);
      if (options.junk) share[64]! ^= 0x01;
      peer.send(encodeFrame(FrameType.Pake, share));
      const pB = await peer.frame(0, 30_000).catch(() => null);
      if (pB?.type === FrameType.Pake) peer.send(encodeFrame(FrameType.Confirm, Buffer.alloc(32)));
      await peer.closed(30_000).catch(() => peer.socket.destroy());
      peers.delete(peer);
    }
  };
  const lanes = Array.from({ length: options.lanes ?? 3 }, () => guess());
  return {
    attempts: () => attempts,
    stop: async () => {
      running = false;
      for (const peer of peers) peer.socket.destroy();
      await Promise.all(lanes);
    },
  };
}

describe('fair tokens: a stranger guessing from one address cannot lock the code holder out', () => {
  for (const junk of [false, true]) {
    test(`${junk ? 'junk shares' : 'wrong codes'} sent without pause from 127.0.0.2: the honest send() from 127.0.0.1 still delivers`, async () => {
      const src = await tempDir();
      const dst = await tempDir();
      const file = await writeSample(src, 'honest.bin', 50_000);
      const refillMs = 300;
      const { rx, events } = await startReceiver(dst, { rateLimit: { refillMs } });
      const stranger = attacker(rx.port, '127.0.0.2', { junk });
      cleanups.push(() => stranger.stop());
      // The burst is gone before the honest sender arrives: the stranger has made 5 attempts.
      await within(
        new Promise<void>((resolve) => {
          const poll = setInterval(() => stranger.attempts() > 5 && (clearInterval(poll), resolve()), 10);
        }),
        WAIT_MS,
        'the stranger to use up the burst',
      );
      const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port: rx.port, retries: 0 }), 15_000, 'honest send');
      expect(summary.exitCode).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'honest.bin')))).toEqual(fingerprint(file.content));
      // The stranger was being refused meanwhile, not let through.
      expect(events.some((e) => e.event === 'error' && (e.code === 'ERR_BAD_CODE' || e.code === 'ERR_MALFORMED_PAYLOAD' || e.code === 'ERR_RATE_LIMITED'))).toBe(true);
    });
  }
});

describe('peer text before authentication is never shown', () => {
  test("a stranger's ABORT to the receiver: its events carry ferry's words, no ESC, BEL, newline or forged line", async () => {
    const { rx, events } = await startReceiver(await tempDir());
    const peer = await rawConnect(rx.port);
    peer.send(encodeAbort('ERR_TRANSFER', FORGED));
    await peer.closed(WAIT_MS);
    const reported = await within(
      new Promise<FerryEvent>((resolve) => {
        const poll = setInterval(() => {
          const found = events.find((e) => e.event === 'error');
          if (found) (clearInterval(poll), resolve(found));
        }, 10);
      }),
      WAIT_MS,
      'the receiver to report the ABORT',
    );
    expect(reported).toMatchObject({ code: 'ERR_TRANSFER' });
    for (const e of events) clean(JSON.stringify(e) + ('message' in e ? String(e.message) : ''));
  });

  /** A fake receiver: reads the sender's PAKE, then answers with `answer`. */
  async function fakeReceiver(answer: Buffer): Promise<number> {
    const server: Server = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end(answer));
      cleanups.push(() => socket.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    return (server.address() as AddressInfo).port;
  }

  async function sendTo(port: number): Promise<{ error: FerryError | undefined; events: FerryEvent[] }> {
    const file = await writeSample(await tempDir(), 'x.bin', 10);
    const events: FerryEvent[] = [];
    const summary = await within(send({ code: CODE, files: [file.path], host: '127.0.0.1', port, retries: 0, onEvent: (e) => events.push(e) }), WAIT_MS, 'send');
    return { error: summary.error, events };
  }

  test("a fake receiver's ABORT: the sender's error and events carry ferry's words only", async () => {
    const { error, events } = await sendTo(await fakeReceiver(encodeAbort('ERR_BAD_CODE', FORGED)));
    expect(error).toMatchObject({ code: 'ERR_BAD_CODE', remote: true });
    clean(error!.message);
    for (const e of events) clean(JSON.stringify(e) + ('message' in e ? String(e.message) : ''));
  });

  test('a fake receiver answering HELLO or ABORT ERR_INSECURE_MISMATCH: ERR_INSECURE_MISMATCH, and nothing advises --insecure', async () => {
    const answers = [encodeHello([2]), encodeAbort('ERR_INSECURE_MISMATCH', 'run the sender with --insecure')];
    for (const answer of answers) {
      const { error, events } = await sendTo(await fakeReceiver(answer));
      expect(error).toMatchObject({ code: 'ERR_INSECURE_MISMATCH' });
      expect(error!.message).not.toContain('insecure');
      for (const e of events) expect(JSON.stringify(e)).not.toContain('insecure');
    }
  });
});
