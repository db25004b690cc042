/**
 * The secure handshake over real loopback sockets: both ends, hostile and
 * silent peers played by hand with the codec, and a tiny proxy in the middle
 * to record or damage the bytes.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { FrameType, HEADER_SIZE, TRAILER_SIZE } from '../src/protocol/constants.js';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { FerryError } from '../src/protocol/errors.js';
import { encodeAbort, encodeFrame, encodeHello, type ControlFrame } from '../src/protocol/messages.js';
import { secureClient, secureServer } from '../src/secure/handshake.js';
import { TLS_CIPHERS } from '../src/secure/tls.js';
import { CodeGuard } from '../src/secure/limiter.js';
import { passwordScalar, spake2Finish, spake2Start } from '../src/secure/spake2.js';

const CODE = '7-orbit-velvet-cactus';
const WRONG = '8-orbit-velvet-cactus';
/** Generous: these waits only end early on failure. */
const WAIT_MS = 10_000;
const OPTIONS = { timeoutMs: 5000 };

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Rejects if `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`test wait timed out: ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** What a promise settles to, as a value: the error itself when it rejects. */
async function outcome<T>(promise: Promise<T>): Promise<T | FerryError> {
  try {
    return await within(promise, WAIT_MS, 'handshake outcome');
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
}

async function listen(onConnection?: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return { server, port: (server.address() as AddressInfo).port };
}

function track<S extends Socket>(socket: S): S {
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  return socket;
}

async function dial(port: number): Promise<Socket> {
  const socket = track(connect(port, '127.0.0.1'));
  await within(new Promise((resolve) => socket.once('connect', resolve)), WAIT_MS, 'connect');
  return socket;
}

/** A connected pair of plain sockets on loopback: `client` dialled, `server` accepted. */
async function socketPair(): Promise<{ client: Socket; server: Socket }> {
  let accept!: (socket: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const { port } = await listen((socket) => accept(track(socket)));
  const client = await dial(port);
  return { client, server: await within(accepted, WAIT_MS, 'accept') };
}

/**
 * The same pair through a proxy that records both directions and can flip
 * one byte of the client->server stream (XOR 0x01 at offset `flipAt`).
 */
async function proxiedPair(flipAt?: number): Promise<{ client: Socket; server: Socket; up: Buffer[]; down: Buffer[] }> {
  let accept!: (socket: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const target = await listen((socket) => accept(track(socket)));
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const proxy = await listen((inbound) => {
    track(inbound);
    const outbound = track(connect(target.port, '127.0.0.1'));
    let offset = 0;
    inbound.on('data', (chunk: Buffer) => {
      if (flipAt !== undefined && flipAt >= offset && flipAt < offset + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[flipAt - offset]! ^= 0x01;
      }
      offset += chunk.length;
      up.push(chunk);
      outbound.write(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      down.push(chunk);
      inbound.write(chunk);
    });
    inbound.on('end', () => outbound.end());
    outbound.on('end', () => inbound.end());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  const client = await dial(proxy.port);
  return { client, server: await within(accepted, WAIT_MS, 'accept through proxy'), up, down };
}

/** Reads ferry frames from a plain socket by hand, one at a time, each wait bounded. */
function frames(socket: Socket): { next(): Promise<ControlFrame> } {
  const queue: ControlFrame[] = [];
  let waiter: (() => void) | null = null;
  let failure: Error | null = null;
  const decoder = new FrameDecoder({
    onFrame: (frame) => queue.push(frame),
    onData: () => {
      throw new Error('DATA frame');
    },
  });
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (err) {
      failure = err as Error;
    }
    waiter?.();
  });
  socket.on('close', () => {
    failure ??= new Error('closed');
    waiter?.();
  });
  return {
    next: () =>
      within(
        new Promise<ControlFrame>((resolve, reject) => {
          const check = (): void => {
            const frame = queue.shift();
            if (frame) resolve(frame);
            else if (failure) reject(failure);
            else return;
            waiter = null;
          };
          waiter = check;
          check();
        }),
        WAIT_MS,
        'next frame',
      ),
  };
}

/** Reads everything a TLS socket delivers until it ends or fails. */
function collect(socket: TLSSocket): Promise<{ data: Buffer; error: (Error & { code?: string }) | null }> {
  const chunks: Buffer[] = [];
  return within(
    new Promise((resolve) => {
      let error: Error | null = null;
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', (err) => (error = err));
      socket.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
    }),
    WAIT_MS,
    'TLS stream to close',
  );
}

/** Runs both ends; each side's result or FerryError. */
async function handshake(
  senderCode: string,
  guard: CodeGuard,
  sockets?: { client: Socket; server: Socket },
): Promise<{ client: TLSSocket | FerryError; server: TLSSocket | FerryError }> {
  const { client, server } = sockets ?? (await socketPair());
  const [c, s] = await Promise.all([outcome(secureClient(client, senderCode, OPTIONS)), outcome(secureServer(server, guard, OPTIONS))]);
  for (const side of [c, s]) if (!(side instanceof FerryError)) track(side);
  return { client: c, server: s };
}

function tlsSocketOf(value: TLSSocket | FerryError): TLSSocket {
  if (value instanceof FerryError) throw new Error(`handshake failed: ${value.code}: ${value.message}`);
  return value;
}

describe('secure handshake: right code', () => {
  test('both ends get a TLS 1.3 socket keyed by the code, and 1 MiB arrives intact', async () => {
    const guard = new CodeGuard(CODE);
    // The sender may type the code loosely: it is normalized before hashing.
    const result = await handshake(' 7 Orbit_velvet CACTUS ', guard);
    const client = tlsSocketOf(result.client);
    const server = tlsSocketOf(result.server);
    for (const side of [client, server]) {
      expect(side.getProtocol()).toBe('TLSv1.3');
      expect(side.getCipher().name).toBe(TLS_CIPHERS.split(':')[0]);
      expect(side.isSessionReused()).toBe(true);
    }
    expect(client.getPeerCertificate()).toEqual({});
    expect(guard.failures).toBe(0);

    const payload = randomBytes(1024 * 1024);
    const received = collect(server);
    client.end(payload);
    const { data, error } = await received;
    expect(error).toBeNull();
    expect(data.equals(payload)).toBe(true);
  });

  test('the ClientHello offers only psk_dhe_ke with a key share, and the server picks PSK + ECDHE', async () => {
    const sockets = await proxiedPair();
    const result = await handshake(CODE, new CodeGuard(CODE), sockets);
    const client = tlsSocketOf(result.client);
    const server = tlsSocketOf(result.server);
    const received = collect(server);
    client.end('done');
    expect((await received).data.toString()).toBe('done');

    const up = Buffer.concat(sockets.up);
    const down = Buffer.concat(sockets.down);
    // Sender: PAKE, CONFIRM, then TLS. Receiver: PAKE, CONFIRM, SECURE, then TLS.
    const clientHello = parseHello(up.subarray(skipFrames(up, [FrameType.Pake, FrameType.Confirm])), 1);
    const serverHello = parseHello(down.subarray(skipFrames(down, [FrameType.Pake, FrameType.Confirm, FrameType.Secure])), 2);

    expect(clientHello.extensions.get(0x002d)).toEqual(Buffer.from([0x01, 0x01])); // psk_key_exchange_modes: [psk_dhe_ke]
    expect(clientHello.extensions.has(0x0033)).toBe(true); // key_share
    expect(clientHello.extensions.has(0x0029)).toBe(true); // pre_shared_key
    expect(clientHello.extensions.has(0x0000)).toBe(false); // no SNI
    // 0x00ff is the renegotiation SCSV OpenSSL always adds: a signal, not a suite.
    expect(clientHello.cipherSuites.filter((suite) => suite !== 0x00ff)).toEqual([0x1301, 0x1303]);
    expect(serverHello.extensions.has(0x0033)).toBe(true); // ECDHE happened
    expect(serverHello.extensions.has(0x0029)).toBe(true); // and the PSK was accepted
  });

  test('destroying the plain sockets before the TLS ones right after the handshake is safe', async () => {
    // Node 20 frees the SSL object under OpenSSL (a segfault) if this happens on
    // the stack that emitted 'secure'; the handshake hands sockets over later.
    const sockets = await socketPair();
    const result = await handshake(CODE, new CodeGuard(CODE), sockets);
    const client = tlsSocketOf(result.client);
    const server = tlsSocketOf(result.server);
    const closed = Promise.all([client, server].map((s) => new Promise((resolve) => s.once('close', resolve))));
    sockets.server.destroy();
    sockets.client.destroy();
    server.destroy();
    client.destroy();
    await within(closed, WAIT_MS, 'TLS sockets to close');
    await new Promise((resolve) => setTimeout(resolve, 50));
  });
});

describe('secure handshake: failures', () => {
  test('wrong code: both sides ERR_BAD_CODE, the receiver counts one failure', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await handshake(WRONG, guard);
    expect(client).toMatchObject({ code: 'ERR_BAD_CODE', remote: false, message: "wrong code: the receiver's code differs" });
    expect(server).toMatchObject({ code: 'ERR_BAD_CODE', remote: true });
    expect(guard.failures).toBe(1);
  });

  test('a sender that sends a bad CONFIRM gets ABORT ERR_BAD_CODE from the receiver', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, OPTIONS));
    const reader = frames(client);
    const a = spake2Start('A', await passwordScalar(WRONG));
    client.write(encodeFrame(FrameType.Pake, a.share));
    expect((await reader.next()).type).toBe(FrameType.Pake);
    expect((await reader.next()).type).toBe(FrameType.Confirm);
    client.write(encodeFrame(FrameType.Confirm, randomBytes(32)));
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_BAD_CODE', message: "wrong code: the sender's code differs" });
    expect(await serverDone).toMatchObject({ code: 'ERR_BAD_CODE', remote: false });
    expect(guard.failures).toBe(1);
  });

  test('rate limit: with the bucket empty two handshakes from a source wait their turn, a third is refused at once, before pB', async () => {
    const now = 0;
    // No refill within the test: the injected clock stands still.
    const guard = new CodeGuard(CODE, { burst: 2, refillMs: 60_000, now: () => now });
    for (let i = 0; i < 2; i++) {
      const { client, server } = await handshake(WRONG, guard);
      expect(client).toMatchObject({ code: 'ERR_BAD_CODE' });
      expect(server).toMatchObject({ code: 'ERR_BAD_CODE' });
    }
    expect(guard.failures).toBe(2);

    const waiting = await Promise.all([socketPair(), socketPair()]);
    const waitingDone = waiting.map(({ client, server }) => {
      const done = outcome(secureServer(server, guard, OPTIONS));
      const reader = frames(client);
      return { client, done, reader };
    });
    const w = await passwordScalar(CODE);
    for (const { client } of waitingDone) client.write(encodeFrame(FrameType.Pake, spake2Start('A', w).share));

    // The right code too: the limiter cannot tell who is guessing, only where from.
    const refused = await handshake(CODE, guard);
    expect(refused.client).toMatchObject({ code: 'ERR_RATE_LIMITED', remote: true });
    expect(refused.server).toMatchObject({ code: 'ERR_RATE_LIMITED', remote: false });
    expect(guard.failures).toBe(2);

    // The waiting ones never saw pB: hanging up costs no token.
    for (const { client } of waitingDone) client.destroy();
    for (const { done } of waitingDone) expect(await done).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(guard.failures).toBe(2);
  });

  test('an --insecure sender (HELLO first) is told ERR_INSECURE_MISMATCH', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, OPTIONS));
    const reader = frames(client);
    client.write(encodeHello([2]));
    const message = 'this receiver requires a code; run the sender with --code, or both sides with --insecure';
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_INSECURE_MISMATCH', message });
    expect(await serverDone).toMatchObject({ code: 'ERR_INSECURE_MISMATCH', message });
    expect(guard.failures).toBe(0);
  });

  test("the sender reports the receiver's ABORT with its code", async () => {
    const { client, server } = await socketPair();
    const clientDone = outcome(secureClient(client, CODE, OPTIONS));
    const reader = frames(server);
    expect((await reader.next()).type).toBe(FrameType.Pake);
    server.end(encodeAbort('ERR_INSECURE_MISMATCH', 'this receiver runs with --insecure'));
    const error = await clientDone;
    expect(error).toMatchObject({ code: 'ERR_INSECURE_MISMATCH', remote: true });
    // Before authentication the peer's own text is not repeated (a stranger may have written it).
    expect((error as FerryError).message).not.toContain('this receiver runs with --insecure');
  });

  test('a sender answered with HELLO (an --insecure receiver) stops with ERR_INSECURE_MISMATCH', async () => {
    const { client, server } = await socketPair();
    const clientDone = outcome(secureClient(client, CODE, OPTIONS));
    const reader = frames(server);
    expect((await reader.next()).type).toBe(FrameType.Pake);
    server.write(encodeHello([2]));
    expect(await clientDone).toMatchObject({ code: 'ERR_INSECURE_MISMATCH', remote: false });
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_INSECURE_MISMATCH' });
  });

  test('a stranger probing the port gets ERR_BAD_MAGIC and costs no token', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, OPTIONS));
    const reader = frames(client);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_BAD_MAGIC' });
    expect(await serverDone).toMatchObject({ code: 'ERR_BAD_MAGIC' });
    expect(guard.failures).toBe(0);
    expect(guard.retryAfterMs()).toBe(0);
  });

  test('bytes behind the last handshake frame are ERR_UNEXPECTED_FRAME', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, OPTIONS));
    const reader = frames(client);
    const a = spake2Start('A', await passwordScalar(CODE));
    client.write(encodeFrame(FrameType.Pake, a.share));
    const pB = await reader.next();
    expect(pB.type).toBe(FrameType.Pake);
    expect((await reader.next()).type).toBe(FrameType.Confirm);
    const keys = spake2Finish(a, (pB as { share: Buffer }).share);
    client.write(Buffer.concat([encodeFrame(FrameType.Confirm, keys.cA), Buffer.from([0x16, 0x03, 0x01])]));
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
    expect(await serverDone).toMatchObject({ code: 'ERR_UNEXPECTED_FRAME' });
  });

  test('a byte flipped in the TLS stream: the receiving socket fails and never delivers altered bytes', async () => {
    const flipAt = 200_000;
    const sockets = await proxiedPair(flipAt);
    const result = await handshake(CODE, new CodeGuard(CODE), sockets);
    const client = tlsSocketOf(result.client);
    const server = tlsSocketOf(result.server);
    const payload = randomBytes(1024 * 1024);
    const received = collect(server);
    client.end(payload);
    const { data, error } = await received;
    expect(error?.code).toMatch(/^ERR_SSL_/);
    expect(data.length).toBeLessThan(flipAt);
    expect(data.equals(payload.subarray(0, data.length))).toBe(true);
  });
});

describe('secure handshake: every wait is bounded', () => {
  test('a client that connects and says nothing: ERR_TIMEOUT within timeoutMs', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const reader = frames(client);
    const started = performance.now();
    const result = await outcome(secureServer(server, guard, { timeoutMs: 300 }));
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(300 + 1500);
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_TIMEOUT' });
    expect(guard.failures).toBe(0);
  });

  test('a receiver that never answers: the sender fails with ERR_TIMEOUT and says so', async () => {
    const { client, server } = await socketPair();
    const reader = frames(server);
    const started = performance.now();
    const result = await outcome(secureClient(client, CODE, { timeoutMs: 1000 }));
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ code: 'ERR_TIMEOUT' });
    // One bound for the password hash, one for the wait on PAKE.
    expect(elapsed).toBeLessThan(2 * 1000 + 1500);
    expect((await reader.next()).type).toBe(FrameType.Pake);
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_TIMEOUT' });
  });

  test('a sender that goes silent after pB: ERR_TIMEOUT, and the attempt counts as a failure', async () => {
    const guard = new CodeGuard(CODE);
    await guard.scalar();
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, { timeoutMs: 300 }));
    const reader = frames(client);
    client.write(encodeFrame(FrameType.Pake, spake2Start('A', 12345n).share));
    expect((await reader.next()).type).toBe(FrameType.Pake);
    expect(await serverDone).toMatchObject({ code: 'ERR_TIMEOUT' });
    expect(guard.failures).toBe(1);
  });

  test('a sender that hangs up after pB: ERR_CONNECTION_LOST, and the attempt counts as a failure', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const serverDone = outcome(secureServer(server, guard, OPTIONS));
    const reader = frames(client);
    client.write(encodeFrame(FrameType.Pake, spake2Start('A', 12345n).share));
    expect((await reader.next()).type).toBe(FrameType.Pake);
    client.destroy();
    expect(await serverDone).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(guard.failures).toBe(1);
  });

  test('the signal stops a waiting receiver; the peer is told and no token is spent', async () => {
    const guard = new CodeGuard(CODE);
    const { client, server } = await socketPair();
    const controller = new AbortController();
    const serverDone = outcome(secureServer(server, guard, { timeoutMs: 5000, signal: controller.signal }));
    const reader = frames(client);
    client.write(encodeFrame(FrameType.Pake, spake2Start('A', 12345n).share));
    expect((await reader.next()).type).toBe(FrameType.Pake);
    expect((await reader.next()).type).toBe(FrameType.Confirm);
    controller.abort();
    expect(await serverDone).toMatchObject({ code: 'ERR_SIGINT' });
    expect(await reader.next()).toMatchObject({ type: FrameType.Abort, code: 'ERR_INTERRUPTED' });
    expect(guard.failures).toBe(0);
  });
});

/** Offset of the first byte after the given ferry frames at the start of `stream`. */
function skipFrames(stream: Buffer, types: FrameType[]): number {
  let at = 0;
  for (const type of types) {
    expect(stream[at]).toBe(0xc8);
    expect(stream.readUInt16BE(at + 2)).toBe(type);
    at += HEADER_SIZE + stream.readUInt32BE(at + 4) + TRAILER_SIZE;
  }
  return at;
}

/** The cipher suites and extensions of a ClientHello (1) or ServerHello (2) at the start of `bytes`. */
function parseHello(bytes: Buffer, handshakeType: 1 | 2): { cipherSuites: number[]; extensions: Map<number, Buffer> } {
  expect(bytes[0]).toBe(0x16); // TLS record: handshake
  expect(bytes[5]).toBe(handshakeType);
  let at = 5 + 4 + 2 + 32; // record header, handshake header, legacy_version, random
  at += 1 + bytes[at]!; // legacy_session_id
  const cipherSuites: number[] = [];
  if (handshakeType === 1) {
    const length = bytes.readUInt16BE(at);
    for (let i = 0; i < length; i += 2) cipherSuites.push(bytes.readUInt16BE(at + 2 + i));
    at += 2 + length;
    at += 1 + bytes[at]!; // legacy_compression_methods
  } else {
    cipherSuites.push(bytes.readUInt16BE(at));
    at += 2 + 1; // cipher_suite, legacy_compression_method
  }
  const end = at + 2 + bytes.readUInt16BE(at);
  at += 2;
  const extensions = new Map<number, Buffer>();
  while (at < end) {
    const type = bytes.readUInt16BE(at);
    const length = bytes.readUInt16BE(at + 2);
    extensions.set(type, bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { cipherSuites, extensions };
}
