/**
 * Connection over an in-memory socket pair: frames in and out, the state
 * tables, the peer's ABORT, heartbeats, the idle deadline and flow control.
 * The test plays the peer with raw bytes (test/support/wire-peer.ts).
 */
import { once } from 'node:events';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Connection } from '../../src/connection.js';
import { FrameType } from '../../src/protocol/constants.js';
import type { FerryError } from '../../src/protocol/errors.js';
import { encodeAbort, encodeEnd, encodeFrame, encodeHeartbeat, encodeHello, encodeOffer, encodeVerdict, type OfferFrame } from '../../src/protocol/messages.js';
import { RECEIVER_STATES, SENDER_STATES, type StateTable } from '../../src/protocol/states.js';
import { asSocket, cutAt, duplexPair, type PairOptions } from '../support/duplex-pair.js';
import { WirePeer, within } from '../support/wire-peer.js';

const DIGEST = Buffer.alloc(32, 0xab);
const OFFER = encodeOffer({ size: 5, mtimeMs: 1_700_000_000_000, mode: 0o644, algorithm: 1, name: 'a.txt' });
const DATA = encodeFrame(FrameType.Data, Buffer.from('hello'));
const END = encodeEnd(DIGEST, DIGEST);

const open: Array<{ destroy(): void }> = [];
afterEach(() => {
  vi.useRealTimers();
  for (const c of open.splice(0)) c.destroy();
});

function connect<T extends StateTable>(table: T, options: PairOptions & { timeoutMs?: number } = {}): { conn: Connection<T>; peer: WirePeer } {
  const [mine, theirs] = duplexPair(options);
  const conn = new Connection(asSocket(mine), options.timeoutMs ?? 10_000, table);
  open.push(conn);
  return { conn, peer: new WirePeer(theirs) };
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>, what = 'a rejection'): Promise<FerryError> {
  return within(
    promise.then(
      (value) => {
        throw new Error(`expected ${what}, got ${JSON.stringify(value)}`);
      },
      (err: FerryError) => err,
    ),
    what,
  );
}

describe('frames in and out', () => {
  test('what one side writes, the other decodes; the peer is named by its address', async () => {
    const { conn, peer } = connect(SENDER_STATES, { addresses: [{ address: '::ffff:10.0.0.1', port: 5 }, { address: '::1', port: 7878 }] });
    expect(conn.peer).toBe('[::1]:7878');
    await conn.write(encodeHello([1, 2]));
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Hello, algorithms: [1, 2] });
    peer.write(encodeHello([2]));
    expect(await within(conn.expect('HANDSHAKE'), 'HELLO')).toMatchObject({ type: FrameType.Hello, algorithms: [2] });
  });

  test('batch() sends the writes of one tick as one chunk', async () => {
    const { conn, peer } = connect(SENDER_STATES);
    const chunks: number[] = [];
    peer.end.on('data', (chunk: Buffer) => chunks.push(chunk.length));
    conn.batch();
    void conn.write(OFFER);
    void conn.write(DATA);
    await peer.frame(0);
    expect(chunks).toEqual([OFFER.length + DATA.length]);
  });

  test('OFFER, DATA and END arrive the same however the stream is split', async () => {
    const stream = Buffer.concat([OFFER, DATA, END]);
    for (let at = 1; at < stream.length; at++) {
      const { conn, peer } = connect(RECEIVER_STATES, { split: cutAt(at) });
      const data: Buffer[] = [];
      conn.setDataHandler((piece) => data.push(Buffer.from(piece)));
      peer.write(stream);
      const offer = (await within(conn.expect('IDLE'), `OFFER, split at ${at}`)) as OfferFrame;
      expect(offer.name.toString()).toBe('a.txt');
      expect((await within(conn.expect('RECEIVING'), `END, split at ${at}`)).type).toBe(FrameType.End);
      expect(Buffer.concat(data).toString()).toBe('hello');
      conn.destroy();
    }
  });
});

describe('the state tables', () => {
  test('a frame the state does not allow: ERR_UNEXPECTED_FRAME here, an ABORT with that code to the peer', async () => {
    const { conn, peer } = connect(RECEIVER_STATES);
    peer.write(encodeHello([1]));
    const err = await rejection(conn.expect('IDLE'));
    expect(err.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
    await within(peer.ended, 'the FIN after the ABORT');
  });

  test('a VERDICT that arrives early waits for the state that reads it', async () => {
    const { conn, peer } = connect(SENDER_STATES);
    peer.write(encodeVerdict('OK', DIGEST));
    await once(peer.end.peer, 'data');
    expect(conn.error).toBeNull();
    expect(await within(conn.expect('AWAIT_VERDICT'), 'VERDICT')).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
  });

  test("enter('SENDING'): a VERDICT fails the connection the moment it arrives, nobody reading", async () => {
    const { conn, peer } = connect(SENDER_STATES);
    conn.enter('SENDING');
    peer.write(encodeVerdict('OK', DIGEST));
    expect((await rejection(conn.failed)).code).toBe('ERR_UNEXPECTED_FRAME');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
  });

  test('heartbeats: ignored by the sender, refused by the receiver', async () => {
    const sender = connect(SENDER_STATES);
    sender.peer.write(encodeHeartbeat(10), encodeHeartbeat(20), encodeVerdict('OK', DIGEST));
    expect((await within(sender.conn.expect('AWAIT_VERDICT'), 'VERDICT after heartbeats')).type).toBe(FrameType.Verdict);

    const receiver = connect(RECEIVER_STATES);
    receiver.peer.write(encodeHeartbeat(10));
    expect((await rejection(receiver.conn.expect('IDLE'))).code).toBe('ERR_UNEXPECTED_FRAME');
  });

  test('DATA with no handler set is a protocol error', async () => {
    const { conn, peer } = connect(RECEIVER_STATES);
    peer.write(DATA);
    expect((await rejection(conn.failed)).code).toBe('ERR_UNEXPECTED_FRAME');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
  });
});

describe("the peer's ABORT", () => {
  test("becomes an error with the peer's code; its text is escaped, never raw", async () => {
    const { conn, peer } = connect(SENDER_STATES);
    peer.write(encodeAbort('ERR_IO', 'disk \x1b[2Jfull\nferry: sent 1 file, all verified\u202e\x07'));
    const err = await rejection(conn.next());
    expect(err.code).toBe('ERR_IO');
    expect(err.remote).toBe(true);
    expect(err.message).toContain('\\x1b[2Jfull\\nferry: sent');
    expect(err.message).toContain('\\u202e\\x07');
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e]/);
    // Every later wait fails the same way.
    expect((await rejection(conn.write(OFFER))).code).toBe('ERR_IO');
  });
});

describe('the end of the input', () => {
  test('a cut inside a frame is ERR_TRUNCATED', async () => {
    const { conn, peer } = connect(RECEIVER_STATES);
    peer.write(OFFER.subarray(0, OFFER.length - 3));
    peer.end.end();
    expect((await rejection(conn.next())).code).toBe('ERR_TRUNCATED');
  });

  test('a FIN between frames is a lost connection, after the frames before it', async () => {
    const { conn, peer } = connect(RECEIVER_STATES);
    peer.write(OFFER);
    peer.end.end();
    expect((await within(conn.expect('IDLE'), 'OFFER')).type).toBe(FrameType.Offer);
    expect((await rejection(conn.next())).code).toBe('ERR_CONNECTION_LOST');
  });

  test('a reset is a lost connection', async () => {
    const { conn, peer } = connect(RECEIVER_STATES);
    peer.end.reset();
    expect((await rejection(conn.next())).code).toBe('ERR_CONNECTION_LOST');
    await within(conn.closed, 'close');
  });
});

describe('the idle deadline', () => {
  test('silence for the whole timeout: ERR_TIMEOUT, and the peer is told', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(RECEIVER_STATES, { timeoutMs: 1000 });
    vi.advanceTimersByTime(999);
    expect(conn.error).toBeNull();
    vi.advanceTimersByTime(1);
    expect(conn.error?.code).toBe('ERR_TIMEOUT');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_TIMEOUT' });
  });

  test('each frame that arrives restarts it', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(SENDER_STATES, { timeoutMs: 1000 });
    for (let i = 0; i < 3; i++) {
      vi.advanceTimersByTime(900);
      peer.write(encodeHeartbeat(i));
      await once(peer.end.peer, 'data');
    }
    vi.advanceTimersByTime(900);
    expect(conn.error).toBeNull();
    vi.advanceTimersByTime(100);
    expect(conn.error?.code).toBe('ERR_TIMEOUT');
  });

  test('local work and a paused sink do not count against the peer', async () => {
    vi.useFakeTimers();
    const { conn } = connect(RECEIVER_STATES, { timeoutMs: 1000 });
    let finish!: () => void;
    const work = conn.local(() => new Promise<void>((resolve) => (finish = resolve)));
    vi.advanceTimersByTime(5000);
    expect(conn.error).toBeNull();
    finish();
    await work;
    conn.pauseData();
    vi.advanceTimersByTime(5000);
    expect(conn.error).toBeNull();
    conn.resumeData();
    vi.advanceTimersByTime(1000);
    expect(conn.error?.code).toBe('ERR_TIMEOUT');
  });
});

describe('flow control', () => {
  test('pauseData() stops the peer through backpressure; resumeData() lets it go on, nothing lost', async () => {
    const { conn, peer } = connect(RECEIVER_STATES, { highWaterMark: 4096 });
    let received = 0;
    conn.setDataHandler((piece) => (received += piece.length));
    conn.pauseData();
    const frame = encodeFrame(FrameType.Data, Buffer.alloc(1000, 7));
    let sent = 0;
    let room = true;
    for (let i = 0; i < 1000 && room; i++) {
      room = peer.end.write(frame);
      sent += 1000;
      // Let the bytes travel so that the reader's buffer, not only the writer's, fills.
      if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(room).toBe(false);
    expect(peer.end.writableNeedDrain).toBe(true);
    expect(received).toBe(0);
    const drained = once(peer.end, 'drain');
    conn.resumeData();
    await within(drained, "'drain' on the peer");
    peer.write(END);
    expect((await within(conn.expect('RECEIVING'), 'END')).type).toBe(FrameType.End);
    expect(received).toBe(sent);
  });

  test('write() waits for drain when the socket is full, and fails if the connection does', async () => {
    const { conn, peer } = connect(SENDER_STATES, { highWaterMark: 1024 });
    peer.end.pause();
    const frame = encodeFrame(FrameType.Data, Buffer.alloc(2000));
    let waiting: Promise<void> | null = null;
    for (let i = 0; i < 100 && waiting === null; i++) {
      let settled = false;
      const w = conn.write(frame).then(() => void (settled = true));
      await Promise.resolve();
      await Promise.resolve();
      if (!settled) waiting = w;
    }
    expect(waiting).not.toBeNull();
    peer.end.resume();
    await within(waiting!, 'drain');

    peer.end.pause();
    let blocked: Promise<void> | null = null;
    for (let i = 0; i < 100 && blocked === null; i++) {
      const w = conn.write(frame);
      if (conn.socket.writableNeedDrain) blocked = w;
    }
    conn.abort(new (await import('../../src/protocol/errors.js')).FerryError('ERR_SHUTDOWN', 'stopping'));
    expect((await rejection(blocked!)).code).toBe('ERR_SHUTDOWN');
  });
});
