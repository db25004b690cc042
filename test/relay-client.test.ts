/**
 * The relay client (src/relay/client.ts) against scripted relays on
 * loopback: the peer's first bytes that come in the same read as `ok\n` are
 * not lost, a relay that does not allocate gets a join of a random room,
 * and any other answer is ERR_RELAY in ferry's words (nothing of it shown),
 * or ERR_BUSY for ferry's relay's `busy\n`.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, send } from '../src/index.js';
import { Seat } from '../src/relay/client.js';
import { RECEIVER_SIDE, SENDER_SIDE, allocateLine, parseRelayRequest, relayLine, roomToken } from '../src/relay/wire.js';
import { tempDir, within, writeSample } from './support/files.js';

const CODE = '7-orbit-velvet-cactus';

const servers = new Set<Server>();
afterEach(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  servers.clear();
});

/** A relay that runs `script` on each connection with the lines it reads; resolves with its port. */
async function scriptedRelay(script: (socket: Socket, line: string, index: number) => void): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  let count = 0;
  const server = createServer((socket) => {
    const index = count++;
    let held = '';
    // One line per connection, as a relay reads: what follows it is the script's.
    const onData = (chunk: Buffer): void => {
      held += chunk.toString('latin1');
      const newline = held.indexOf('\n');
      if (newline === -1) return;
      const line = held.slice(0, newline + 1);
      lines.push(line);
      socket.off('data', onData);
      script(socket, line, index);
    };
    socket.on('data', onData);
    socket.on('error', () => {});
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, lines };
}

const relayAt = (port: number) => ({ host: '127.0.0.1', port, timeoutMs: 5000 });

function firstBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) resolve(got);
    });
    socket.once('error', reject);
  });
}

describe('the relay client', () => {
  test("allocate: the room's number, then ok with the peer's first bytes in the same write, all of them delivered after it", async () => {
    const relay = await scriptedRelay((socket, line) => {
      expect(line).toBe(allocateLine(RECEIVER_SIDE));
      socket.write('nameplate 4127\n');
      setImmediate(() => socket.write('ok\nPEER-FIRST-FRAME'));
    });
    const seat = await Seat.allocate(relayAt(relay.port), RECEIVER_SIDE);
    expect(seat.nameplate).toBe(4127);
    const socket = await within(seat.paired(undefined, undefined), 5000, 'pairing');
    expect((await within(firstBytes(socket, 16), 5000, 'the first bytes')).toString()).toBe('PEER-FIRST-FRAME');
    socket.destroy();
  });

  test('a relay that does not allocate (bad handshake, as the transit relay answers): a second connection joins a random room by its token', async () => {
    const relay = await scriptedRelay((socket, line, index) => {
      if (index === 0) {
        socket.end('bad handshake\n');
        return;
      }
      const request = parseRelayRequest(line);
      expect(request).toMatchObject({ kind: 'relay', side: SENDER_SIDE });
      socket.write('ok\n');
    });
    const seat = await Seat.allocate(relayAt(relay.port), SENDER_SIDE);
    expect(seat.nameplate).toBeGreaterThanOrEqual(1);
    expect(seat.nameplate).toBeLessThanOrEqual(9999);
    const socket = await within(seat.paired(undefined, undefined), 5000, 'pairing');
    socket.destroy();
    expect(relay.lines[1]).toBe(relayLine(roomToken(seat.nameplate), SENDER_SIDE));
  });

  test.each([
    ['a line of its own, with escapes', 'welcome \u001b[31mfriend\u001b[0m\n', 'ERR_RELAY'],
    ['128 bytes without a newline', 'x'.repeat(128), 'ERR_RELAY'],
    ['bad handshake to a join', 'bad handshake\n', 'ERR_RELAY'],
    ["ferry's relay full", 'busy\n', 'ERR_BUSY'],
  ])('%s: %s', async (_what, answer, code) => {
    const relay = await scriptedRelay((socket) => socket.write(answer));
    const seat = await Seat.join(relayAt(relay.port), RECEIVER_SIDE, 7);
    const err = await within(seat.paired(5000, undefined).then(() => null, (e: unknown) => e), 5000, 'the answer');
    expect(err).toMatchObject({ code });
    // Nothing the relay said is repeated.
    expect(String((err as Error).message)).not.toMatch(/welcome|friend|\u001b|xxxx/);
  });

  test('a relay that closes the waiting seat: ERR_CONNECTION_LOST (the caller re-joins)', async () => {
    const relay = await scriptedRelay((socket) => socket.end());
    const seat = await Seat.join(relayAt(relay.port), RECEIVER_SIDE, 7);
    await expect(within(seat.paired(undefined, undefined), 5000, 'the close')).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
  });

  test('nobody comes within the wait: ERR_TIMEOUT naming the room', async () => {
    const relay = await scriptedRelay(() => {});
    const seat = await Seat.join(relayAt(relay.port), SENDER_SIDE, 812);
    await expect(within(seat.paired(200, undefined), 5000, 'the wait')).rejects.toMatchObject({ code: 'ERR_TIMEOUT', message: expect.stringContaining('room 812') });
  });

  test('send --relay --code: a seat the relay closes unpaired (the transit relay drops the other senders in a room it pairs) is taken again within the timeout', async () => {
    const dir = await tempDir();
    const rx = await receive({ dir, host: '127.0.0.1', port: 0, code: CODE, once: true });
    // Connection 0 is closed without a word; connection 1 is paired with a real receiver behind the "relay".
    const relay = await scriptedRelay((socket, _line, index) => {
      if (index === 0) {
        socket.end();
        return;
      }
      socket.write('ok\n');
      const up = connect({ host: '127.0.0.1', port: rx.port });
      up.on('error', () => socket.destroy());
      socket.pipe(up).pipe(socket);
    });
    const file = await writeSample(await tempDir(), 'a.bin', 50_000);
    const summary = await within(send({ files: [file.path], relay: { host: '127.0.0.1', port: relay.port }, code: CODE }), 20_000, 'the send');
    expect(summary.exitCode, String(summary.error)).toBe(0);
    expect(relay.lines).toHaveLength(2);
    expect(await within(rx.done, 10_000, 'the receiver')).toBe(0);
  });
});
