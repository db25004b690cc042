/**
 * LAN discovery in process, on loopback only: a receiver bound to 127.0.0.1
 * announces on 127.255.255.255, and the finder listens on a UDP port of its
 * own (never 7878, so parallel runs and other tests never hear each other).
 * Across namespaces, with the CLI: lan.netns.e2e.test.ts.
 */
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, send, type Receiver } from '../src/index.js';
import { findReceiver } from '../src/discovery/find.js';
import { encodeAnnouncement } from '../src/discovery/wire.js';
import type { FerryEvent } from '../src/events.js';
import { listing, tempDir, within, writeSample } from './support/files.js';

const CODE = '7-orbit-velvet-cactus';
const OTHER_CODE = '8-apple-banana-cherry';
const nobody = (): boolean => false;

/** A UDP port free right now (the OS chose it), for one test's announcements. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function announcingReceiver(udpPort: number, code: string, events: FerryEvent[] = []): Promise<Receiver> {
  const dir = await tempDir('ferry-lan-');
  const rx = await receive({ dir, host: '127.0.0.1', port: 0, code, announce: true, announcePort: udpPort, onEvent: (e) => events.push(e) });
  cleanup.push(() => rx.close());
  return rx;
}

/** TCP listeners that count connections and hang up on each: what forged announcements point at. */
async function countingServers(n: number): Promise<{ ports: number[]; connections(): number }> {
  let count = 0;
  const servers: Server[] = [];
  for (let i = 0; i < n; i++) {
    const server = createServer((socket) => {
      count++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  cleanup.push(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))));
  return { ports: servers.map((s) => (s.address() as AddressInfo).port), connections: () => count };
}

/** Sends datagrams to the finder's port on loopback, every 50 ms until stopped (a finder may bind after the first). */
function spray(udpPort: number, datagrams: Buffer[]): void {
  const s = createSocket('udp4');
  const timer = setInterval(() => {
    for (const d of datagrams) s.send(d, udpPort, '127.0.0.1');
  }, 50);
  cleanup.push(async () => {
    clearInterval(timer);
    await new Promise<void>((resolve) => s.close(() => resolve()));
  });
}

describe('finding the receiver on the LAN (loopback)', () => {
  test('a receiver announcing on loopback is found, over a connection that proved the code', async () => {
    const udpPort = await freeUdpPort();
    const events: FerryEvent[] = [];
    const rx = await announcingReceiver(udpPort, CODE, events);
    expect(events.find((e) => e.event === 'listening')).toMatchObject({ announcing: true });
    const found = await within(findReceiver({ code: CODE, findMs: 5000, timeoutMs: 5000, udpPort, ignore: nobody }), 10_000, 'find');
    found.socket.destroy();
    expect(found).toMatchObject({ host: '127.0.0.1', port: rx.port, candidates: 1 });
  });

  test('the right receiver among two: the other one sees at most one wrong code and nothing else', async () => {
    const udpPort = await freeUdpPort();
    const otherEvents: FerryEvent[] = [];
    const other = await announcingReceiver(udpPort, OTHER_CODE, otherEvents);
    const right = await announcingReceiver(udpPort, CODE);
    const found = await within(findReceiver({ code: CODE, findMs: 5000, timeoutMs: 5000, udpPort, ignore: nobody }), 10_000, 'find');
    found.socket.destroy();
    expect(found.port).toBe(right.port);
    await other.close();
    const wrong = otherEvents.filter((e) => e.event === 'error');
    expect(wrong.length).toBeLessThanOrEqual(1);
    for (const e of wrong) expect(e).toMatchObject({ code: 'ERR_BAD_CODE' });
  });

  test('only receivers with another code: ERR_BAD_CODE, after one guess at each', async () => {
    const udpPort = await freeUdpPort();
    const events: FerryEvent[] = [];
    await announcingReceiver(udpPort, OTHER_CODE, events);
    const failed = findReceiver({ code: CODE, findMs: 1500, timeoutMs: 5000, udpPort, ignore: nobody });
    await expect(within(failed, 10_000, 'find')).rejects.toMatchObject({ code: 'ERR_BAD_CODE', exitCode: 4 });
    // Heard every second, tried once.
    expect(events.filter((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE')).toHaveLength(1);
  });

  test('nobody announcing: ERR_NO_RECEIVER (exit 5) when the listening time is over', async () => {
    const udpPort = await freeUdpPort();
    const failed = findReceiver({ code: CODE, findMs: 300, timeoutMs: 5000, udpPort, ignore: nobody });
    await expect(within(failed, 5000, 'find')).rejects.toMatchObject({ code: 'ERR_NO_RECEIVER', exitCode: 5 });
  });

  test('the UDP port held by another program: ERR_LISTEN (exit 1) at once, one line naming the port', async () => {
    const holder = createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, resolve));
    cleanup.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const udpPort = holder.address().port;
    const failed = findReceiver({ code: CODE, findMs: 3000, timeoutMs: 2000, udpPort, ignore: nobody });
    await expect(within(failed, 2000, 'find')).rejects.toMatchObject({ code: 'ERR_LISTEN', exitCode: 1, message: expect.stringContaining(`UDP port ${udpPort}`) });
  });

  test('junk on the port is ignored: nothing is dialled', async () => {
    const udpPort = await freeUdpPort();
    const { ports, connections } = await countingServers(1);
    const good = encodeAnnouncement({ port: ports[0]!, instance: '0011223344556677' });
    const junk = [Buffer.alloc(0), good.subarray(0, 15), Buffer.concat([good, Buffer.alloc(1)]), Buffer.from(good).fill(0, 0, 4), Buffer.alloc(1500, 0x46)];
    spray(udpPort, junk);
    await expect(within(findReceiver({ code: CODE, findMs: 600, timeoutMs: 2000, udpPort, ignore: nobody }), 5000, 'find')).rejects.toMatchObject({
      code: 'ERR_NO_RECEIVER',
    });
    expect(connections()).toBe(0);
  });

  test('a flood of announcements: at most maxCandidates are tried, each once', async () => {
    const udpPort = await freeUdpPort();
    const { ports, connections } = await countingServers(40);
    spray(
      udpPort,
      ports.map((port, i) => encodeAnnouncement({ port, instance: i.toString(16).padStart(16, '0') })),
    );
    const failed = findReceiver({ code: CODE, findMs: 800, timeoutMs: 2000, udpPort, ignore: nobody, maxCandidates: 5 });
    await expect(within(failed, 5000, 'find')).rejects.toMatchObject({ code: 'ERR_NO_RECEIVER' });
    expect(connections()).toBe(5);
  });

  test('a --once receiver stops announcing once its sender has said HELLO, while the session still runs', async () => {
    const udpPort = await freeUdpPort();
    const heard: { at: number; instance: string }[] = [];
    const ear = createSocket({ type: 'udp4', reuseAddr: true });
    ear.on('message', (d) => heard.push({ at: performance.now(), instance: d.toString('hex', 8, 16) }));
    await new Promise<void>((resolve) => ear.bind(udpPort, resolve));
    cleanup.push(() => new Promise<void>((resolve) => ear.close(() => resolve())));
    const dir = await tempDir('ferry-lan-');
    const events: FerryEvent[] = [];
    const rx = await receive({ dir, host: '127.0.0.1', port: 0, code: CODE, once: true, announce: true, announcePort: udpPort, onEvent: (e) => events.push(e) });
    cleanup.push(() => rx.close());
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => heard.length > 0 && (clearInterval(check), resolve()), 20);
      }),
      5000,
      'the first announcement',
    );
    const src = await tempDir('ferry-lan-src-');
    // 80 KiB at 16 KiB/s: the session lasts about 5 s, long past the claim.
    const file = await writeSample(src, 'slow.bin', 80 * 1024);
    const sending = send({ files: [file.path], code: CODE, host: '127.0.0.1', port: rx.port, limitRate: 16 * 1024 });
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => events.some((e) => e.event === 'start') && (clearInterval(check), resolve()), 20);
      }),
      10_000,
      'the file to start',
    );
    const claimedAt = performance.now();
    // Two and a half announcement intervals with the session running: none may come (one already on its way may land first).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(events.some((e) => e.event === 'summary')).toBe(false);
    expect(heard.filter((h) => h.at > claimedAt + 200)).toEqual([]);
    expect((await within(sending, 20_000, 'send')).exitCode).toBe(0);
    expect(await listing(dir)).toEqual(['slow.bin']);
  }, 30_000);

  test("send() never takes a receiver of its own process for the peer: ERR_NO_RECEIVER, nothing sent", async () => {
    const udpPort = await freeUdpPort();
    const events: FerryEvent[] = [];
    await announcingReceiver(udpPort, CODE, events);
    const src = await tempDir('ferry-lan-src-');
    const file = await writeSample(src, 'a.bin', 1000);
    const summary = await within(send({ files: [file.path], code: CODE, findMs: 1500, announcePort: udpPort }), 10_000, 'send');
    expect(summary).toMatchObject({ exitCode: 5, error: { code: 'ERR_NO_RECEIVER' } });
    expect(events.filter((e) => e.event !== 'listening')).toEqual([]);
  });
});
