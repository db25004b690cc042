/**
 * The relay server (src/relay/server.ts) over real sockets on loopback,
 * driven by raw clients that write the lines of docs/protocol.md section 10
 * by hand.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { burstFor } from '../src/rate-limit.js';
import { receive } from '../src/receiver/index.js';
import { send } from '../src/sender/index.js';
import { Rooms } from '../src/relay/rooms.js';
import { startRelay, type Relay, type RelayOptions } from '../src/relay/server.js';
import type { RelayEvent } from '../src/relay/log.js';
import { NAMEPLATE_MAX, RECEIVER_SIDE, RELAY_MAX_LINE, SENDER_SIDE, allocateLine, relayLine, roomToken } from '../src/relay/wire.js';
import { tempDir, writeSample } from './support/files.js';
import { HAVE_TWIST3, rawClient, transitRelay, until, type RawClient } from './support/relay-raw.js';

const MiB = 1024 * 1024;
const token = (): string => randomBytes(32).toString('hex');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const relays: Relay[] = [];
afterEach(async () => {
  await Promise.all(relays.map((r) => r.close()));
  relays.length = 0;
});

async function relay(options: RelayOptions = {}): Promise<Relay & { events: RelayEvent[] }> {
  const events: RelayEvent[] = [];
  const r = await startRelay({ host: '127.0.0.1', port: 0, onEvent: (e) => events.push(e), ...options });
  relays.push(r);
  return Object.assign(r, { events });
}

/** Two raw clients paired in a fresh room; resolves once both have their `ok`. */
async function pair(port: number, room = token()): Promise<[RawClient, RawClient]> {
  const a = await rawClient(port);
  a.write(relayLine(room, SENDER_SIDE));
  const b = await rawClient(port);
  b.write(relayLine(room, RECEIVER_SIDE));
  await Promise.all([a.waitForBytes(3), b.waitForBytes(3)]);
  expect([a.text, b.text]).toEqual(['ok\n', 'ok\n']);
  return [a, b];
}

/** Allocates a nameplate; resolves with the client and its number. */
async function allocate(port: number, side = RECEIVER_SIDE): Promise<{ client: RawClient; nameplate: number }> {
  const client = await rawClient(port);
  client.write(allocateLine(side));
  await client.waitForBytes(1);
  await until(() => client.text.endsWith('\n'), 'the nameplate line');
  const m = /^nameplate (\d+)\n$/.exec(client.text);
  if (!m) throw new Error(`not a nameplate: ${JSON.stringify(client.text)}`);
  return { client, nameplate: Number(m[1]) };
}

describe('pairing', () => {
  test('same token, different sides: ok to both, then bytes both ways untouched, and a half-close is passed on', async () => {
    const r = await relay();
    const [a, b] = await pair(r.port);
    const there = randomBytes(100_000);
    a.write(there);
    expect((await b.waitForBytes(3 + there.length)).subarray(3)).toEqual(there);
    // A's FIN reaches B, and B may still answer: the relay forwards half-closes.
    a.socket.end();
    await b.waitForEnd();
    const back = Buffer.from('verdict after the half-close');
    b.socket.end(back);
    expect((await a.waitForEnd()).slice(3)).toBe(back.toString('latin1'));
    await until(() => r.stats().connections === 0, 'both connections closed');
    const paired = r.events.find((e) => e.event === 'paired');
    const unpaired = r.events.find((e) => e.event === 'unpaired');
    expect(paired).toMatchObject({ sources: ['127.0.0.1', '127.0.0.1'] });
    expect(unpaired).toMatchObject({ bytes: there.length + back.length, reason: 'closed' });
  });

  test('the same side never pairs: a second sender waits beside the first, and each receiver takes the oldest', async () => {
    const r = await relay();
    const room = token();
    const s1 = await rawClient(r.port);
    s1.write(relayLine(room, SENDER_SIDE));
    await until(() => r.stats().waiting === 1, 'first sender waiting');
    const s2 = await rawClient(r.port);
    s2.write(relayLine(room, SENDER_SIDE));
    await until(() => r.stats().waiting === 2, 'second sender waiting');
    expect([s1.text, s2.text]).toEqual(['', '']);

    const r1 = await rawClient(r.port);
    r1.write(relayLine(room, RECEIVER_SIDE));
    await Promise.all([s1.waitForBytes(3), r1.waitForBytes(3)]);
    expect(r.stats()).toMatchObject({ waiting: 1, pairs: 1 });
    expect(s2.text).toBe('');
    expect(s2.ended).toBe(false);

    const r2 = await rawClient(r.port);
    r2.write(relayLine(room, RECEIVER_SIDE));
    await Promise.all([s2.waitForBytes(3), r2.waitForBytes(3)]);
    s1.write('one');
    s2.write('two');
    expect((await r1.waitForBytes(6)).toString()).toBe('ok\none');
    expect((await r2.waitForBytes(6)).toString()).toBe('ok\ntwo');
  });

  test('when one side closes, the other is closed; a reset resets the other', async () => {
    const r = await relay();
    const [a, b] = await pair(r.port);
    a.close();
    await b.waitForEnd();
    // A FIN is a half-close to the relay: the pair lasts until B closes too.
    b.close();
    const [c, d] = await pair(r.port);
    d.socket.resetAndDestroy();
    await c.waitForEnd();
    expect(r.events.filter((e) => e.event === 'unpaired').map((e) => e.event === 'unpaired' && e.reason)).toContain('error');
    await until(() => r.stats().connections === 0, 'all closed');
  });
});

describe('nameplates', () => {
  test('1,000 waiting allocations get 1..1000, each once; a closed one is held for the grace period, then given again', async () => {
    let now = 0;
    const r = await relay({ now: () => now, limits: { perSource: 2000, total: 2000 } });
    const got: Array<{ client: RawClient; nameplate: number }> = [];
    for (let i = 0; i < 1000; i += 50) got.push(...(await Promise.all(Array.from({ length: 50 }, () => allocate(r.port)))));
    expect(got.map((g) => g.nameplate).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(r.stats().waiting).toBe(1000);

    const five = got.find((g) => g.nameplate === 5)!;
    five.client.close();
    await until(() => r.stats().waiting === 999, 'nameplate 5 released');
    now += 9 * 60_000;
    expect((await allocate(r.port)).nameplate).toBe(1001);
    now += 60_000;
    expect((await allocate(r.port)).nameplate).toBe(5);
  });

  test('the room of an allocated nameplate is where the other side finds it, and a nameplate named by `please relay` is held too', async () => {
    const r = await relay();
    const rx = await allocate(r.port);
    expect(rx.nameplate).toBe(1);
    const tx = await rawClient(r.port);
    tx.write(relayLine(roomToken(1), SENDER_SIDE));
    await Promise.all([tx.waitForBytes(3), until(() => rx.client.text === 'nameplate 1\nok\n', 'ok after the nameplate')]);
    expect(r.events.find((e) => e.event === 'paired')).toMatchObject({ nameplate: 1, room: roomToken(1).slice(0, 16) });

    const squatter = await rawClient(r.port);
    squatter.write(relayLine(roomToken(2), SENDER_SIDE));
    await until(() => r.stats().waiting === 1, 'waiting in room 2');
    expect((await allocate(r.port)).nameplate).toBe(3);
  });

  test('with every nameplate held, allocate finds none (Rooms, in memory)', () => {
    const rooms = new Rooms<{ side: string }>(60_000, () => 0);
    for (let n = 1; n <= NAMEPLATE_MAX; n++) {
      expect(rooms.allocate()).toBe(n);
      rooms.join(roomToken(n), { side: RECEIVER_SIDE });
    }
    expect(rooms.allocate()).toBeNull();
  });

  test('no free nameplate: busy, and closed', async () => {
    const r = await relay({ limits: { waiting: 1 } });
    await allocate(r.port);
    const second = await rawClient(r.port);
    second.write(allocateLine(RECEIVER_SIDE));
    expect(await second.waitForEnd()).toBe('busy\n');
    expect(r.events.filter((e) => e.event === 'refused').map((e) => e.event === 'refused' && e.reason)).toEqual(['waiting']);
  });
});

describe('bad handshakes', () => {
  const cases: Array<[string, (room: string) => Array<string | Buffer>, string, string]> = [
    ['not a request', () => ['hello\n'], 'bad handshake\n', 'bad-handshake'],
    ['upper-case token', (room) => [relayLine(room.toUpperCase(), SENDER_SIDE)], 'bad handshake\n', 'bad-handshake'],
    ["the transit relay's old line without a side", (room) => [`please relay ${room}\n`], 'bad handshake\n', 'bad-handshake'],
    ['CRLF', (room) => [relayLine(room, SENDER_SIDE).replace('\n', '\r\n')], 'bad handshake\n', 'bad-handshake'],
    ['a line longer than RELAY_MAX_LINE', () => ['x'.repeat(200)], 'bad handshake\n', 'long-line'],
    ['a long line in small pieces', () => Array.from({ length: 130 }, () => 'y'), 'bad handshake\n', 'long-line'],
    ['bytes after the line, in the same write', (room) => [relayLine(room, SENDER_SIDE) + 'early'], 'impatient\n', 'impatient'],
    ['bytes after the line, later', (room) => [relayLine(room, SENDER_SIDE), Buffer.from('early')], 'impatient\n', 'impatient'],
  ];
  for (const [name, lines, answer, reason] of cases) {
    test(`${name}: ${JSON.stringify(answer)} and closed`, async () => {
      const r = await relay();
      const c = await rawClient(r.port);
      for (const piece of lines(token())) {
        c.write(piece);
        // Give each piece its own segment where it can: the relay must not care.
        await new Promise((resolve) => c.socket.write('', resolve));
      }
      expect(await c.waitForEnd()).toBe(answer);
      c.close();
      expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason, source: '127.0.0.1' }]);
      await until(() => r.stats().connections === 0 && r.stats().waiting === 0, 'nothing left');
    });
  }

  test('no line within lineMs: bad handshake and closed', async () => {
    const r = await relay({ limits: { lineMs: 200 } });
    const c = await rawClient(r.port);
    c.write('please relay');
    expect(await c.waitForEnd()).toBe('bad handshake\n');
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'slow-line' }]);
  });

  test('refusals are logged at most 5 a kind per 10 s: 20 bad lines make 5 lines', async () => {
    const r = await relay();
    const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient(r.port)));
    clients.forEach((c) => c.write('nonsense\n'));
    for (const c of clients) expect(await c.waitForEnd()).toBe('bad handshake\n');
    expect(r.events.filter((e) => e.event === 'refused')).toHaveLength(5);
  });

  test("a refusal's log line never holds what the client sent", async () => {
    const r = await relay();
    const c = await rawClient(r.port);
    c.write('\u001b[31mplease relay me\u202e\n');
    await c.waitForEnd();
    const text = JSON.stringify(r.events);
    expect(text).not.toContain('please relay me');
    expect(text).not.toContain('\u001b');
  });
});

describe('limits', () => {
  /** A client from `from` that sent its line and waits in a room of its own. */
  const waiting = async (port: number, from: string): Promise<RawClient> => {
    const c = await rawClient(port, from);
    c.write(relayLine(token(), SENDER_SIDE));
    return c;
  };

  test('per source: with every slot waiting, the connection over the limit is told busy and closed; another source still pairs', async () => {
    const r = await relay({ limits: { perSource: 3 } });
    const room = token();
    const first = await rawClient(r.port);
    first.write(relayLine(room, SENDER_SIDE));
    await waiting(r.port, '127.0.0.1');
    await waiting(r.port, '127.0.0.1');
    await until(() => r.stats().waiting === 3, 'three waiting');
    const fourth = await rawClient(r.port);
    fourth.write(relayLine(room, RECEIVER_SIDE));
    expect(await fourth.waitForEnd()).toBe('busy\n');
    const other = await rawClient(r.port, '127.0.0.2');
    other.write(relayLine(room, RECEIVER_SIDE));
    await Promise.all([first.waitForBytes(3), other.waitForBytes(3)]);
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'per-source', source: '127.0.0.1' }]);
  });

  test('per source: a full source makes room by closing its own oldest connection that sent no line', async () => {
    const r = await relay({ limits: { perSource: 3 } });
    const silentOld = await rawClient(r.port);
    await waiting(r.port, '127.0.0.1');
    const silentNew = await rawClient(r.port);
    const elsewhere = await rawClient(r.port, '127.0.0.2');
    await until(() => r.stats().connections === 4, 'four admitted');
    const newcomer = await waiting(r.port, '127.0.0.1');
    expect(await silentOld.waitForEnd()).toMatch(/^(busy\n)?$/);
    await until(() => r.stats().waiting === 2, 'the newcomer waiting');
    expect([silentNew.ended, elsewhere.ended, newcomer.ended]).toEqual([false, false, false]);
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'evicted', source: '127.0.0.1' }]);
  });

  test('in total: with every slot waiting, over the limit is busy whatever the source, and a freed slot is taken again', async () => {
    const r = await relay({ limits: { total: 3 } });
    const a = await waiting(r.port, '127.0.0.1');
    await waiting(r.port, '127.0.0.2');
    await waiting(r.port, '127.0.0.3');
    await until(() => r.stats().waiting === 3, 'three waiting');
    const over = await rawClient(r.port, '127.0.0.4');
    expect(await over.waitForEnd()).toBe('busy\n');
    a.close();
    await until(() => r.stats().connections === 2, 'a slot freed');
    await waiting(r.port, '127.0.0.4');
    await until(() => r.stats().waiting === 3, 'admitted and waiting');
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'total', source: '127.0.0.4' }]);
  });

  test('in total: a full relay makes room by closing the oldest silent connection of the source holding the most', async () => {
    const r = await relay({ limits: { total: 4 } });
    const one = await rawClient(r.port, '127.0.0.2');
    const twoOld = await rawClient(r.port, '127.0.0.3');
    const twoNew = await rawClient(r.port, '127.0.0.3');
    const talking = await waiting(r.port, '127.0.0.3');
    await until(() => r.stats().connections === 4 && r.stats().waiting === 1, 'four admitted');
    const newcomer = await waiting(r.port, '127.0.0.4');
    expect(await twoOld.waitForEnd()).toMatch(/^(busy\n)?$/);
    await until(() => r.stats().waiting === 2, 'the newcomer waiting');
    expect([one.ended, twoNew.ended, talking.ended, newcomer.ended]).toEqual([false, false, false, false]);
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'evicted', source: '127.0.0.3' }]);
  });

  test('a connection with no partner within waitMs is closed without an answer, and its room is empty again', async () => {
    const r = await relay({ limits: { waitMs: 300 } });
    const c = await rawClient(r.port);
    c.write(relayLine(token(), SENDER_SIDE));
    expect(await c.waitForEnd()).toBe('');
    expect(r.stats()).toMatchObject({ waiting: 0 });
    expect(r.events.filter((e) => e.event === 'refused')).toMatchObject([{ reason: 'wait-timeout' }]);
  });

  test('bytes per pair: the destination gets exactly the limit, then both are closed', async () => {
    const r = await relay({ limits: { pairBytes: MiB } });
    const [a, b] = await pair(r.port);
    const flood = randomBytes(2 * MiB);
    a.write(flood);
    const got = await b.waitForEnd(20_000);
    expect(got.length).toBe(3 + MiB);
    expect(b.bytes.subarray(3)).toEqual(flood.subarray(0, MiB));
    await a.waitForEnd();
    expect(r.events.find((e) => e.event === 'unpaired')).toMatchObject({ bytes: MiB, reason: 'bytes' });
  });

  test('rate per pair: with the clock stopped the pair gets its burst and then waits; as time passes the rest follows', async () => {
    const stoppedAt = performance.now();
    let stopped = true;
    const rate = 2 * MiB;
    const r = await relay({ now: () => (stopped ? stoppedAt : performance.now()), limits: { pairRate: rate } });
    const [a, b] = await pair(r.port);
    const payload = randomBytes(2 * MiB);
    a.write(payload);
    await until(() => r.stats().throttled === 1, 'the pair held to its rate');
    // The burst (a tenth of a second of the rate), and the socket reads that ran into debt: no more.
    const early = b.bytes.length - 3;
    expect(early).toBeLessThanOrEqual(burstFor(rate) + 2 * 64 * 1024);
    stopped = false;
    const got = await b.waitForBytes(3 + payload.length, 20_000);
    expect(got.subarray(3).equals(payload)).toBe(true);
  });

  test('memory stays bounded when one side floods and the other never reads, and all of it arrives once it does', async () => {
    const r = await relay();
    const [a, b] = await pair(r.port);
    b.socket.pause();
    const flood = randomBytes(64 * MiB);
    // In pieces, so that A's queue tells how much the relay and the kernels have taken.
    for (let at = 0; at < flood.length; at += MiB) a.write(flood.subarray(at, at + MiB));
    // Backpressure: the relay stops reading A once B's socket takes no more (without it, the queue toward B grows instead).
    await until(() => r.stats().stalled === 1 || r.stats().peakBuffered >= 256 * 1024, 'the relay paused the flooding side', 30_000);
    const stats = r.stats();
    expect(stats.buffered).toBeLessThan(256 * 1024);
    expect(stats.peakBuffered).toBeLessThan(256 * 1024);
    // What the relay did not read is still with A: the flood did not move into the relay.
    expect(a.socket.writableLength).toBeGreaterThan(16 * MiB);
    b.socket.resume();
    const got = await b.waitForBytes(3 + flood.length, 60_000);
    expect(sha256(got.subarray(3))).toBe(sha256(flood));
    expect(r.stats().peakBuffered).toBeLessThan(256 * 1024);
  }, 90_000);
});

describe('many at once', () => {
  test('junk and idle connections while a real pair forwards 64 MiB intact', async () => {
    const r = await relay({ limits: { lineMs: 60_000, perSource: 400 } });
    const [a, b] = await pair(r.port);
    const idle = await Promise.all(Array.from({ length: 50 }, () => rawClient(r.port)));
    const junk = await Promise.all(Array.from({ length: 50 }, () => rawClient(r.port)));
    const lonely = await Promise.all(Array.from({ length: 50 }, () => rawClient(r.port)));
    junk.forEach((c) => c.write(randomBytes(RELAY_MAX_LINE + (c.socket.localPort! % 300))));
    lonely.forEach((c) => c.write(relayLine(token(), SENDER_SIDE)));
    const payload = randomBytes(64 * MiB);
    a.write(payload);
    a.socket.end();
    const got = await b.waitForEnd(60_000);
    expect(got.length).toBe(3 + payload.length);
    expect(sha256(b.bytes.subarray(3))).toBe(sha256(payload));
    for (const c of junk) expect(['bad handshake\n', 'impatient\n']).toContain(await c.waitForEnd());
    expect(idle.every((c) => !c.ended && c.text === '')).toBe(true);
    // The lonely lines may be read after the flood: they wait all the same.
    await until(() => r.stats().waiting === 50, 'the 50 lonely connections waiting');
    expect(r.events.filter((e) => e.event === 'refused' && e.reason !== 'long-line' && e.reason !== 'bad-handshake')).toEqual([]);
  }, 90_000);

  test('200 pairs at once, arriving in any order, each echoes its own payload and no other', async () => {
    const r = await relay({ limits: { perSource: 400 } });
    const pairsWanted = 200;
    const rooms = Array.from({ length: pairsWanted }, token);
    const payloads = rooms.map(() => randomBytes(32 * 1024 + Math.floor(Math.random() * 32 * 1024)));
    const order = [...rooms.keys(), ...rooms.keys()].map((i, k) => ({ i, side: k < pairsWanted ? SENDER_SIDE : RECEIVER_SIDE }));
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(Math.random() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    const clients = await Promise.all(
      order.map(async ({ i, side }) => {
        const c = await rawClient(r.port);
        c.write(relayLine(rooms[i]!, side));
        return { c, i, side };
      }),
    );
    await Promise.all(clients.map(({ c }) => c.waitForBytes(3)));
    for (const { c, i, side } of clients) {
      if (side === SENDER_SIDE) c.write(payloads[i]!);
      else c.socket.on('data', (chunk: Buffer) => c.socket.write(chunk));
    }
    await Promise.all(
      clients.map(async ({ c, i, side }) => {
        const got = await c.waitForBytes(3 + payloads[i]!.length, 30_000);
        expect(got.subarray(3).equals(payloads[i]!), `${side} of pair ${i}`).toBe(true);
      }),
    );
    expect(r.stats()).toMatchObject({ pairs: pairsWanted, waiting: 0 });
  }, 60_000);
});

/**
 * A real ferry session (SPAKE2, TLS, HELLO onwards) through the relay,
 * before the client side exists: each peer reaches the relay through a
 * bridge that writes the relay line, reads `ok`, then pipes both ways.
 */
describe('a ferry session through the relay', () => {
  /** A socket to the relay, waiting in `room` as `side`; resolves once paired, `ok\n` read and nothing after it lost. */
  const joined = (port: number, room: string, side: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.write(relayLine(room, side)));
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        got = Buffer.concat([got, chunk]);
        if (got.length < 3) return;
        socket.off('data', onData);
        socket.pause();
        if (got.subarray(0, 3).toString() !== 'ok\n') return reject(new Error(`not ok: ${JSON.stringify(got.toString())}`));
        if (got.length > 3) socket.unshift(got.subarray(3));
        resolve(socket);
      };
      socket.on('data', onData);
      socket.once('error', reject);
    });
  const splice = (a: Socket, b: Socket): void => {
    a.pipe(b);
    b.pipe(a);
    a.once('close', () => b.destroy());
    b.once('close', () => a.destroy());
  };

  /** Sends `files` to a receiver whose only way in is the relay; the send summary, and the receiver's exit code if a session got through. */
  async function sendThrough(relayPort: number, receiverCode: string, senderCode: string, files: string[], dir: string) {
    const room = roomToken(42);
    const rxEvents: Array<{ event: string; code?: string }> = [];
    const rx = await receive({ dir, host: '127.0.0.1', port: 0, code: receiverCode, once: true, onEvent: (e) => rxEvents.push(e) });
    void joined(relayPort, room, RECEIVER_SIDE).then((up) => {
      const down = connect({ host: '127.0.0.1', port: rx.port, allowHalfOpen: true }, () => splice(up, down));
    });
    const entry = createServer({ allowHalfOpen: true }, (local) => void joined(relayPort, room, SENDER_SIDE).then((up) => splice(local, up)));
    await new Promise<void>((resolve) => entry.listen(0, '127.0.0.1', resolve));
    try {
      const summary = await send({ files, host: '127.0.0.1', port: (entry.address() as AddressInfo).port, code: senderCode, retries: 0 });
      // A wrong code is no session: a --once receiver goes on waiting for one, and reports the failed handshake.
      if (summary.exitCode !== 0) await until(() => rxEvents.some((e) => e.event === 'error'), "the receiver's error event");
      return { summary, rxEvents, exit: summary.exitCode === 0 ? await rx.done : undefined };
    } finally {
      entry.close();
      await rx.close();
    }
  }

  test('a file arrives verified, the relay forwarded every byte of it and more', async () => {
    const r = await relay();
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'through.bin', 5 * MiB + 3);
    const { summary, exit } = await sendThrough(r.port, '42-orbit-velvet-cactus', '42-orbit-velvet-cactus', [file.path], dst);
    expect(summary.exitCode).toBe(0);
    expect(exit).toBe(0);
    expect((await readFile(join(dst, 'through.bin'))).equals(file.content)).toBe(true);
    await until(() => r.events.some((e) => e.event === 'unpaired'), 'the pair ended');
    const unpaired = r.events.find((e) => e.event === 'unpaired');
    expect(unpaired?.event === 'unpaired' && unpaired.bytes).toBeGreaterThan(file.content.length);
  });

  test('a wrong code through the relay is a wrong code on both sides, and no file', async () => {
    const r = await relay();
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'secret.bin', 1000);
    const { summary, exit, rxEvents } = await sendThrough(r.port, '42-orbit-velvet-cactus', '42-orbit-velvet-canoe', [file.path], dst);
    expect(summary.exitCode).toBe(4);
    expect(summary.files[0]).toMatchObject({ code: 'ERR_BAD_CODE' });
    expect(exit).toBeUndefined();
    expect(rxEvents.filter((e) => e.event === 'error'), JSON.stringify(rxEvents)).toMatchObject([{ code: 'ERR_BAD_CODE' }]);
    expect(await readdir(dst)).toEqual([]);
  });
});

/**
 * The transit-protocol subset run against both relays: the same client
 * sequence must get the same answers from ferry's relay and from the
 * magic-wormhole transit relay (Debian's magic-wormhole-transit-relay).
 */
describe.skipIf(!HAVE_TWIST3)('the same answers as the magic-wormhole transit relay', () => {
  type Transcript = string[];
  /**
   * Neither relay says when it has read a line. A pair in another room made
   * after a write and answered `ok` means the relay has gone round its loop
   * since that write's bytes were there to read.
   */
  const settle = async (port: number): Promise<void> => void (await pair(port));

  /** Two senders wait in one room, then a receiver comes: which sender it took, and the other. */
  const twoSendersOneReceiver = async (port: number): Promise<{ paired: RawClient; spare: RawClient; receiver: RawClient }> => {
    const room = token();
    const a = await rawClient(port);
    a.write(relayLine(room, SENDER_SIDE));
    await settle(port);
    const b = await rawClient(port);
    b.write(relayLine(room, SENDER_SIDE));
    await settle(port);
    const receiver = await rawClient(port);
    receiver.write(relayLine(room, RECEIVER_SIDE));
    await receiver.waitForBytes(3);
    // Exactly one of the two senders got the receiver.
    await until(() => a.text === 'ok\n' || b.text === 'ok\n', 'one sender paired');
    return a.text === 'ok\n' ? { paired: a, spare: b, receiver } : { paired: b, spare: a, receiver };
  };
  const sequences: Record<string, (port: number) => Promise<Transcript>> = {
    'pairing and bytes both ways': async (port) => {
      const room = token();
      const a = await rawClient(port);
      a.write(relayLine(room, SENDER_SIDE));
      const b = await rawClient(port);
      b.write(relayLine(room, RECEIVER_SIDE));
      await Promise.all([a.waitForBytes(3), b.waitForBytes(3)]);
      a.write('ping');
      await b.waitForBytes(7);
      b.write('pong');
      await a.waitForBytes(7);
      a.close();
      return [a.text, await b.waitForEnd()];
    },
    'a line that is no request': async (port) => {
      const c = await rawClient(port);
      c.write('GET / HTTP/1.1\r\nHost: relay\r\n\r\n');
      return [await c.waitForEnd()];
    },
    'a long line': async (port) => {
      const c = await rawClient(port);
      c.write('z'.repeat(300));
      return [await c.waitForEnd()];
    },
    'bytes with the line': async (port) => {
      const c = await rawClient(port);
      c.write(relayLine(token(), SENDER_SIDE) + 'hello');
      return [await c.waitForEnd()];
    },
    'the same side twice waits, unanswered, until the other side comes': async (port) => {
      const { paired, spare, receiver } = await twoSendersOneReceiver(port);
      return [receiver.text, paired.text, spare.text];
    },
  };
  for (const [name, run] of Object.entries(sequences)) {
    test(name, async () => {
      const transit = await transitRelay();
      const ferry = await relay();
      const theirs = await run(transit.port);
      const ours = await run(ferry.port);
      expect(ours).toEqual(theirs);
    }, 30_000);
  }

  test('where they differ: a third connection of a paired side is dropped there and kept waiting here', async () => {
    const transit = await transitRelay();
    const ferry = await relay();
    const leftover = async (port: number): Promise<boolean> => {
      const { spare } = await twoSendersOneReceiver(port);
      if (port === ferry.port) await until(() => ferry.stats().waiting === 1, 'the spare still waiting');
      else await spare.waitForEnd();
      return !spare.ended;
    };
    expect(await leftover(transit.port)).toBe(false);
    expect(await leftover(ferry.port)).toBe(true);
  }, 30_000);
});
