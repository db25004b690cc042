/**
 * Deadlines a user can reason about (docs/protocol.md, section 4, rule 6):
 * a control frame must arrive whole within the timeout, however it is
 * dripped; DATA only has to keep moving; a wait for an answer can be bounded
 * whatever heartbeats say; a peer that aborted cannot hold the socket.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ABORT_GRACE_MS, Connection } from '../../src/connection.js';
import { FrameType } from '../../src/protocol/constants.js';
import { encodeAbort, encodeFrame, encodeHeartbeat, encodeHello, encodeVerdict } from '../../src/protocol/messages.js';
import { RECEIVER_STATES, SENDER_STATES, type StateTable } from '../../src/protocol/states.js';
import { asSocket, duplexPair } from '../support/duplex-pair.js';
import { WirePeer, within } from '../support/wire-peer.js';

const open: Array<{ destroy(): void }> = [];
afterEach(() => {
  vi.useRealTimers();
  for (const c of open.splice(0)) c.destroy();
});

function connect<T extends StateTable>(table: T, timeoutMs: number): { conn: Connection<T>; peer: WirePeer } {
  const [mine, theirs] = duplexPair();
  const conn = new Connection(asSocket(mine), timeoutMs, table);
  open.push(conn);
  return { conn, peer: new WirePeer(theirs) };
}

/** Writes `bytes` one at a time, `gapMs` of fake time apart, each delivered before the next. */
async function drip(peer: WirePeer, bytes: Buffer, gapMs: number, stop: () => boolean): Promise<number> {
  let sent = 0;
  for (const byte of bytes) {
    if (stop()) break;
    peer.write(Buffer.of(byte));
    await once(peer.end.peer, 'data');
    sent++;
    vi.advanceTimersByTime(gapMs);
  }
  return sent;
}

describe('a frame must arrive whole within the timeout', () => {
  test('a HELLO dripped one byte per (timeout - 1) fails with ERR_TIMEOUT about one timeout after its first byte', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(RECEIVER_STATES, 1000);
    const waiting = conn.expect('HANDSHAKE').catch((err: unknown) => err);
    const sent = await drip(peer, encodeHello([1, 2]), 999, () => conn.error !== null);
    expect(conn.error?.code).toBe('ERR_TIMEOUT');
    // 2 bytes arrive in the first 1000 ms of fake time; the frame has 16.
    expect(sent).toBeLessThanOrEqual(2);
    expect(await within(waiting, 'the failed wait')).toMatchObject({ code: 'ERR_TIMEOUT' });
  });

  test('DATA dripped a byte at a time within the timeout is still alive: only control frames have a whole-frame deadline', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(RECEIVER_STATES, 1000);
    let received = 0;
    conn.setDataHandler((piece) => (received += piece.length));
    const data = encodeFrame(FrameType.Data, Buffer.alloc(5, 1));
    await drip(peer, data.subarray(0, 8), 0, () => false);
    await drip(peer, data.subarray(8), 900, () => conn.error !== null);
    expect(conn.error).toBeNull();
    expect(received).toBe(5);
  });
});

describe('a bounded wait for an answer', () => {
  test('heartbeats that repeat their count keep the idle deadline off, but not a wait bounded with withinMs', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(SENDER_STATES, 1000);
    const verdict = conn.expect('AWAIT_VERDICT', { withinMs: 3000 }).catch((err: unknown) => err);
    for (let i = 0; i < 4 && conn.error === null; i++) {
      peer.write(encodeHeartbeat(7));
      await once(peer.end.peer, 'data');
      vi.advanceTimersByTime(900);
    }
    expect(conn.error?.code).toBe('ERR_TIMEOUT');
    expect(await within(verdict, 'the bounded wait')).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_TIMEOUT' });
  });


  test('heartbeats whose count grows (a slow link still delivering) restart the bound', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(SENDER_STATES, 1000);
    const verdict = conn.expect('AWAIT_VERDICT', { withinMs: 1500 });
    for (let i = 1; i <= 4; i++) {
      peer.write(encodeHeartbeat(i * 1000));
      await once(peer.end.peer, 'data');
      vi.advanceTimersByTime(900);
    }
    expect(conn.error).toBeNull();
    peer.write(encodeVerdict('OK', Buffer.alloc(32)));
    expect(await within(verdict, 'the VERDICT')).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
  });
});

describe('after the peer aborts', () => {
  test('a peer that sends ABORT and keeps its side open is cut off after the grace period', async () => {
    vi.useFakeTimers();
    const { conn, peer } = connect(RECEIVER_STATES, 60_000);
    const closed = conn.closed;
    peer.write(encodeAbort('ERR_IO', 'bye'));
    await once(peer.end.peer, 'data');
    expect(conn.error?.code).toBe('ERR_IO');
    vi.advanceTimersByTime(ABORT_GRACE_MS + 1);
    await within(closed, 'the socket to close');
  });
});
