import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { clearTimeout, setTimeout } from 'node:timers';
import { afterEach, describe, expect, it } from 'vitest';
import { randomSliceSizes, startProxy } from './support/proxy.js';
import type { FaultPlan, FaultProxy } from './support/proxy.js';

// Every wait below is bounded by this unless a test says otherwise; all of them are
// satisfied by events in milliseconds when things work.
const WAIT_MS = 2000;

/** Rejects if `promise` has not settled within `ms`; never leaves a timer behind. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `condition()` holds, re-checking on every `event` from `emitter`; bounded by WAIT_MS. */
function when(emitter: EventEmitter, event: string, condition: () => boolean, what: string): Promise<void> {
  let check = (): void => undefined;
  const met = new Promise<void>((resolve) => {
    check = () => {
      if (condition()) resolve();
    };
    emitter.on(event, check);
    check();
  });
  return withTimeout(met, WAIT_MS, what).finally(() => emitter.off(event, check));
}

/** Resolves on 'close'; unlike events.once, an 'error' on the way is not a failure here. */
function closeOf(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** The server end of one connection accepted by a sink server. */
class SinkConnection extends EventEmitter {
  private readonly chunks: Buffer[] = [];
  bytes = 0;
  dataEvents = 0;
  sawEnd = false;
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    super();
    socket.on('error', () => undefined); // resets are expected in several tests
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      this.dataEvents += 1;
      this.emit('progress');
    });
    socket.on('end', () => {
      this.sawEnd = true;
      socket.end(); // like a real server: the client is done, so are we
    });
    this.closed = closeOf(socket);
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  waitForBytes(n: number): Promise<void> {
    return when(this, 'progress', () => this.bytes >= n, `${n} bytes at the server (have ${this.bytes})`);
  }
}

interface Sink {
  server: Server;
  port: number;
  /** The next connection the sink accepts (in order). */
  nextConnection(): Promise<SinkConnection>;
}

// Everything a test opens, so afterEach can tear it down even when the test failed.
const servers: Server[] = [];
const proxies: FaultProxy[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await withTimeout(once(server, 'listening'), WAIT_MS, 'listen');
  return (server.address() as AddressInfo).port;
}

/**
 * A server that reads everything. `greeting` is sent to every client on connect; `onAccept`
 * lets a test hold the socket (e.g. pause it) before any data is read.
 */
async function startSink(options: { greeting?: Buffer; onAccept?: (socket: Socket) => void } = {}): Promise<Sink> {
  const accepted: SinkConnection[] = [];
  const arrivals = new EventEmitter();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    options.onAccept?.(socket);
    accepted.push(new SinkConnection(socket));
    if (options.greeting) socket.write(options.greeting);
    arrivals.emit('accepted');
  });
  const port = await listen(server);
  let taken = 0;
  return {
    server,
    port,
    async nextConnection() {
      const index = taken++;
      await when(arrivals, 'accepted', () => accepted.length > index, 'a connection at the sink');
      return accepted[index] as SinkConnection;
    },
  };
}

/** Echoes every byte back and half-closes when the client does. */
async function startEcho(): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  return listen(server);
}

async function proxyTo(port: number, plan?: FaultPlan, opts?: { record?: boolean }): Promise<FaultProxy> {
  const proxy = await startProxy({ host: '127.0.0.1', port }, plan, opts);
  proxies.push(proxy);
  return proxy;
}

/**
 * A connected client that collects what it reads. It may end() first and keep reading; when the
 * other side ends, it closes, so `closed()` covers both an EOF and a reset.
 */
async function dial(port: number) {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  const chunks: Buffer[] = [];
  let error: Error | undefined;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (err) => {
    error = err;
  });
  const closed = closeOf(socket);
  await withTimeout(once(socket, 'connect'), WAIT_MS, 'client connect');
  return {
    socket,
    received: () => Buffer.concat(chunks),
    error: () => error,
    closed: () => withTimeout(closed, WAIT_MS, 'client close'),
  };
}

function differingOffsets(a: Buffer, b: Buffer): number[] {
  expect(a.length).toBe(b.length);
  const offsets: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) offsets.push(i);
  return offsets;
}

function boundaries(sizes: number[]): Set<number> {
  const ends = new Set<number>();
  let offset = 0;
  for (const size of sizes) ends.add((offset += size));
  return ends;
}

describe('fault proxy', () => {
  it('passes bytes through unchanged both ways and propagates half-close', async () => {
    const proxy = await proxyTo(await startEcho());
    const payload = randomBytes(4 * 1024 * 1024);
    const client = await dial(proxy.port);
    client.socket.end(payload);
    await client.closed();

    expect(client.error()).toBeUndefined();
    expect(client.received().equals(payload)).toBe(true);
    expect(proxy.forwarded).toEqual({ up: payload.length, down: payload.length });
    await proxy.closedConnections(1);
  });

  it('applies backpressure instead of buffering a stream the server is slow to read', async () => {
    const sink = await startSink({
      // A server that reads nothing for a while: without backpressure the proxy would soak up
      // most of the payload meanwhile. The delay only shapes the load; nothing waits on it.
      onAccept: (socket) => {
        socket.pause();
        setTimeout(() => {
          maxBuffered = Math.max(maxBuffered, proxy.buffered());
          socket.resume();
        }, 100);
      },
    });
    const proxy = await proxyTo(sink.port);
    let maxBuffered = 0;
    const payload = randomBytes(16 * 1024 * 1024);
    const client = await dial(proxy.port);
    client.socket.end(payload);

    const server = await sink.nextConnection();
    server.on('progress', () => {
      maxBuffered = Math.max(maxBuffered, proxy.buffered());
    });
    await withTimeout(server.closed, 5000, 'the whole payload');

    expect(server.received().equals(payload)).toBe(true);
    expect(maxBuffered).toBeLessThan(1024 * 1024);
  });

  describe('flipAt', () => {
    const size = 64 * 1024;
    it.each([
      { flipAt: 0, flipMask: undefined, where: 'the first byte' },
      { flipAt: 30_001, flipMask: 0x01, where: 'the middle of a chunk' },
      { flipAt: size - 1, flipMask: 0x80, where: 'the last byte' },
    ])('changes exactly $where', async ({ flipAt, flipMask }) => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port, { flipAt, flipMask });
      const payload = randomBytes(size);
      const client = await dial(proxy.port);
      client.socket.end(payload);
      const server = await sink.nextConnection();
      await withTimeout(server.closed, WAIT_MS, 'server close');

      const got = server.received();
      expect(differingOffsets(got, payload)).toEqual([flipAt]);
      expect(got[flipAt]).toBe((payload[flipAt] ?? 0) ^ (flipMask ?? 0xff));
    });

    it('is exact when the stream is sliced around it', async () => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port, { flipAt: 50, slice: 'byte' });
      const payload = randomBytes(100);
      const client = await dial(proxy.port);
      client.socket.end(payload);
      const server = await sink.nextConnection();
      await withTimeout(server.closed, WAIT_MS, 'server close');
      expect(differingOffsets(server.received(), payload)).toEqual([50]);
    });

    it('counts offsets per connection', async () => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port, { flipAt: 10 });
      const payload = randomBytes(100);
      for (let i = 0; i < 2; i++) {
        const client = await dial(proxy.port);
        client.socket.end(payload);
        const server = await sink.nextConnection();
        await withTimeout(server.closed, WAIT_MS, 'server close');
        expect(differingOffsets(server.received(), payload)).toEqual([10]);
      }
      await proxy.closedConnections(2);
    });
  });

  it.each([1, 12_345, 65_536 + 7])('cutAfter %i delivers exactly that many bytes, then cuts both sides', async (n) => {
    const sink = await startSink();
    const proxy = await proxyTo(sink.port, { cutAfter: n });
    const payload = randomBytes(200_000);
    const client = await dial(proxy.port);
    client.socket.write(payload);
    const server = await sink.nextConnection();

    await client.closed();
    await withTimeout(server.closed, WAIT_MS, 'server close');
    expect(server.received().equals(payload.subarray(0, n))).toBe(true);
    expect(proxy.forwarded.up).toBe(n);
    expect(client.socket.destroyed).toBe(true);
    await proxy.closedConnections(1);
  });

  it('cutAfterReverse delivers exactly that many server bytes to the client, then cuts', async () => {
    const greeting = randomBytes(100_000);
    const sink = await startSink({ greeting });
    const proxy = await proxyTo(sink.port, { cutAfterReverse: 777 });
    const client = await dial(proxy.port);
    const server = await sink.nextConnection();

    await client.closed();
    await withTimeout(server.closed, WAIT_MS, 'server close');
    expect(client.received().equals(greeting.subarray(0, 777))).toBe(true);
    expect(proxy.forwarded.down).toBe(777);
  });

  it("slice 'byte' makes one write per byte and keeps the content", async () => {
    const sink = await startSink();
    const proxy = await proxyTo(sink.port, { slice: 'byte' });
    const payload = randomBytes(2000);
    const client = await dial(proxy.port);
    client.socket.end(payload);
    const server = await sink.nextConnection();
    await withTimeout(server.closed, WAIT_MS, 'server close');

    expect(server.received().equals(payload)).toBe(true);
    expect(proxy.writes.up).toBe(payload.length);
    // Loose on purpose: the kernel may still merge some one-byte segments.
    expect(server.dataEvents).toBeGreaterThan(1);
  });

  it('random slicing follows the seed', async () => {
    const maxSlice = 16;
    const payload = randomBytes(3000);
    const expected = boundaries(randomSliceSizes(42, maxSlice, payload.length));

    for (let run = 0; run < 2; run++) {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port, { slice: { mode: 'random', seed: 42, maxSlice } }, { record: true });
      const client = await dial(proxy.port);
      client.socket.end(payload);
      const server = await sink.nextConnection();
      await withTimeout(server.closed, WAIT_MS, 'server close');

      expect(server.received().equals(payload)).toBe(true);
      const sizes = proxy.recordedWrites();
      expect(Math.max(...sizes)).toBeLessThanOrEqual(maxSlice);
      // Every seeded boundary is honoured; extra ones can only appear where a TCP read ended.
      const actual = boundaries(sizes);
      for (const boundary of expected) if (boundary < payload.length) expect(actual.has(boundary)).toBe(true);
    }

    expect(randomSliceSizes(42, maxSlice, 500)).toEqual(randomSliceSizes(42, maxSlice, 500));
    expect(randomSliceSizes(43, maxSlice, 500)).not.toEqual(randomSliceSizes(42, maxSlice, 500));
  });

  it('stall holds bytes at the stall point, then releases all of them', async () => {
    const sink = await startSink();
    const stall = { after: 1000, ms: 150 };
    const proxy = await proxyTo(sink.port, { stall });
    const payload = randomBytes(5000);
    const client = await dial(proxy.port);
    const sentAt = Date.now();
    client.socket.end(payload);
    const server = await sink.nextConnection();

    await server.waitForBytes(stall.after);
    expect(server.bytes).toBe(stall.after);
    await withTimeout(server.closed, WAIT_MS, 'the rest after the stall');
    expect(server.received().equals(payload)).toBe(true);
    // The stall began after the write, so the whole trip cannot be shorter (bar clock rounding).
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(stall.ms - 5);
  });

  it('blackhole forwards up to the offset and then holds the connection open', async () => {
    const sink = await startSink();
    const proxy = await proxyTo(sink.port, { blackholeAfter: 100 });
    const payload = randomBytes(5000);
    const client = await dial(proxy.port);
    client.socket.end(payload);
    const server = await sink.nextConnection();

    await server.waitForBytes(100);
    // Proving that nothing more arrives needs a window of time; this timeout is that window.
    await expect(proxy.closedConnections(1, 150)).rejects.toThrow(/0 of 1/);
    expect(server.bytes).toBe(100);
    expect(server.sawEnd).toBe(false);
    expect(proxy.buffered()).toBeGreaterThan(0);

    await proxy.close();
    await client.closed();
  });

  it('record captures the forwarded stream, faults included', async () => {
    const sink = await startSink();
    const proxy = await proxyTo(sink.port, { flipAt: 3 }, { record: true });
    const client = await dial(proxy.port);
    client.socket.end(Buffer.from('hello, ferry'));
    const server = await sink.nextConnection();
    await withTimeout(server.closed, WAIT_MS, 'server close');

    expect(proxy.recorded().equals(server.received())).toBe(true);
    expect(proxy.recorded().toString('latin1')).toBe(`hel${String.fromCharCode('l'.charCodeAt(0) ^ 0xff)}o, ferry`);
  });

  it('throttles to about bytesPerSecond', async () => {
    const sink = await startSink();
    const proxy = await proxyTo(sink.port, { bytesPerSecond: 40_000 });
    const payload = randomBytes(4000);
    const started = Date.now();
    const client = await dial(proxy.port);
    client.socket.end(payload);
    const server = await sink.nextConnection();
    await withTimeout(server.closed, WAIT_MS, 'server close');

    expect(server.received().equals(payload)).toBe(true);
    // 4000 bytes at 40 kB/s is 100 ms; allow for timer slop either way.
    expect(Date.now() - started).toBeGreaterThanOrEqual(80);
  });

  describe('failures', () => {
    it('closes the client when the target refuses the connection', async () => {
      const refusing = createServer();
      const port = await listen(refusing);
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
      const proxy = await proxyTo(port);

      const client = await dial(proxy.port);
      client.socket.write('anyone there?');
      await client.closed();
      await proxy.closedConnections(1);
    });

    it('destroys the client when the server resets', async () => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port);
      const client = await dial(proxy.port);
      client.socket.write('x');
      const server = await sink.nextConnection();
      await server.waitForBytes(1);
      server.socket.resetAndDestroy();

      await client.closed();
      await proxy.closedConnections(1);
    });

    it('destroys the server side when the client resets', async () => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port);
      const client = await dial(proxy.port);
      client.socket.write('x');
      const server = await sink.nextConnection();
      await server.waitForBytes(1);
      client.socket.resetAndDestroy();

      await withTimeout(server.closed, WAIT_MS, 'server close');
      await proxy.closedConnections(1);
    });

    it('close() tears down open connections and pending timers', async () => {
      const sink = await startSink();
      const proxy = await proxyTo(sink.port, { stall: { after: 0, ms: 60_000 } });
      const client = await dial(proxy.port);
      client.socket.write('held');
      const server = await sink.nextConnection();
      const waiting = proxy.closedConnections(5, 60_000).catch((error: unknown) => error);

      await withTimeout(proxy.close(), WAIT_MS, 'proxy close');
      await client.closed();
      await withTimeout(server.closed, WAIT_MS, 'server close');
      expect(await waiting).toBeInstanceOf(Error);
      expect(String(await waiting)).toMatch(/proxy closed/);
      expect(server.bytes).toBe(0);
    });
  });
});
