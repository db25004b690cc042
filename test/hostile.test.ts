/**
 * A raw peer sends what a correct sender never would. Each case: the error
 * code it must get, nothing created in or outside --dir, and the receiver
 * still serving a correct sender afterwards.
 */
import { mkdir, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rawFrame } from '../fixtures/index.js';
import { receive, send, type Receiver } from '../src/index.js';
import { FrameType, HashId, HEADER_SIZE } from '../src/protocol/constants.js';
import { encodeBye, encodeEnd, encodeHello, encodeOffer, encodeHeartbeat, frameDataInPlace, payloadOf } from '../src/protocol/messages.js';
import { listing, sha256, tempDir, within, writeSample } from './support/files.js';
import { rawConnect, type RawPeer } from './support/raw.js';

let rx: Receiver;
let dst: string;
let parentBefore: string[];
const errors: string[] = [];
let onError = (): void => {};

/**
 * Resolves once the receiver reported the error `code` for a session. It
 * reports it after the session's cleanup, so the temp file is gone by then.
 */
function receiverReported(code: string): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        const at = errors.indexOf(code);
        if (at === -1) return;
        errors.splice(at, 1);
        resolve();
      };
      onError = check;
      check();
    }),
    5000,
    `the receiver's ${code} event`,
  );
}

beforeAll(async () => {
  // Not tempDir(): this folder lives for the whole file (tempDir cleans after each test).
  const root = await mkdtemp(join(tmpdir(), 'ferry-hostile-'));
  dst = join(root, 'inbox');
  await mkdir(dst);
  parentBefore = await readdir(root);
  rx = await receive({
    insecure: true,
    dir: dst,
    host: '127.0.0.1',
    port: 0,
    timeoutMs: 10_000,
    onEvent: (e) => {
      if (e.event !== 'error') return;
      errors.push(e.code);
      onError();
    },
  });
});

afterAll(async () => {
  await rx.close();
  await rm(dirname(dst), { recursive: true, force: true });
});

function data(bytes: Buffer): Buffer {
  const buffer = Buffer.alloc(HEADER_SIZE + bytes.length + 1);
  bytes.copy(buffer, HEADER_SIZE);
  return frameDataInPlace(buffer, bytes.length);
}

async function session(): Promise<RawPeer> {
  const peer = await rawConnect(rx.port);
  peer.send(encodeHello([HashId.Sha256]));
  expect(await peer.frame(0)).toMatchObject({ type: FrameType.Hello });
  return peer;
}

const offer = (name: string | Buffer, size: number): Buffer =>
  encodeOffer({ size, mtimeMs: 0, mode: 0o644, algorithm: HashId.Sha256, name });

/** The END a correct sender sends after `content`, offered with `offerFrame`. */
const endFor = (content: Buffer, offerFrame: Buffer): Buffer =>
  encodeEnd(Buffer.from(sha256(content), 'hex'), Buffer.from(sha256(payloadOf(offerFrame)), 'hex'));

/** After every case: nothing landed anywhere, and a correct sender is still served. */
async function stillServing(): Promise<void> {
  expect(await listing(dst)).toEqual([]);
  expect(await readdir(dirname(dst))).toEqual(parentBefore);
  const src = await tempDir();
  const file = await writeSample(src, 'canary.bin', 1000);
  const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: rx.port }), 5000);
  expect(summary.exitCode).toBe(0);
  await unlink(join(dst, 'canary.bin'));
}

describe('names are refused, and the session goes on', () => {
  const names: Array<[string, Buffer | string, string]> = [
    ['../x', '../x', 'ERR_BAD_NAME'],
    ['/etc/passwd', '/etc/passwd', 'ERR_BAD_NAME'],
    ['a/../b', 'a/../b', 'ERR_BAD_NAME'],
    ['a/./b', 'a/./b', 'ERR_BAD_NAME'],
    ['a//b', 'a//b', 'ERR_BAD_NAME'],
    ['trailing slash', 'a/', 'ERR_BAD_NAME'],
    ['backslash', 'a\\..\\b', 'ERR_BAD_NAME'],
    ['65 levels deep', Array(65).fill('d').join('/'), 'ERR_BAD_NAME'],
    ['..', '..', 'ERR_BAD_NAME'],
    ['.', '.', 'ERR_BAD_NAME'],
    ['NUL', 'a\0b', 'ERR_BAD_NAME'],
    ['ESC', '\u001b[2J', 'ERR_BAD_NAME'],
    ['newline', 'a\nb', 'ERR_BAD_NAME'],
    ['invalid UTF-8', Buffer.from([0x66, 0xc3, 0x28]), 'ERR_BAD_NAME'],
    ['a 4 KB name', 'n'.repeat(4096), 'ERR_NAME_TOO_LONG'],
  ];
  for (const [label, name, code] of names) {
    test(`${label}: REFUSE ${code}`, async () => {
      const peer = await session();
      peer.send(offer(name, 5));
      expect(await peer.frame(1)).toMatchObject({ type: FrameType.Refuse, code });
      // Same connection, a good file next: the refusal did not end the session.
      const fine = offer('fine.txt', 5);
      peer.send(fine);
      expect(await peer.frame(2)).toMatchObject({ type: FrameType.Accept, offset: 0 });
      peer.send(data(Buffer.from('hello')));
      peer.send(endFor(Buffer.from('hello'), fine));
      expect(await peer.frame(3)).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
      peer.send(encodeBye());
      await peer.closed();
      await unlink(join(dst, 'fine.txt'));
      await stillServing();
    });
  }

  test('a 10 KB name does not fit an OFFER frame: ERR_FRAME_TOO_LARGE, connection dropped', async () => {
    const peer = await session();
    const name = Buffer.alloc(10_000, 0x61);
    const payload = Buffer.alloc(24 + name.length);
    payload.writeUInt16BE(name.length & 0xffff, 22);
    peer.send(rawFrame(FrameType.Offer, payload));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Abort, code: 'ERR_FRAME_TOO_LARGE' });
    await peer.closed();
    await stillServing();
  });
});

describe('the byte count of the offer is the law', () => {
  test('more data than offered: ABORT ERR_SIZE_MISMATCH', async () => {
    const peer = await session();
    peer.send(offer('more.bin', 4));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(data(Buffer.from('hello')));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Abort, code: 'ERR_SIZE_MISMATCH' });
    await peer.closed();
    await receiverReported('ERR_SIZE_MISMATCH');
    await stillServing();
  });

  test('END before all bytes: VERDICT ERR_SIZE_MISMATCH, nothing saved, the session goes on', async () => {
    const peer = await session();
    const less = offer('less.bin', 10);
    peer.send(less);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(data(Buffer.from('hello')));
    peer.send(endFor(Buffer.from('hello'), less));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_SIZE_MISMATCH' });
    peer.send(encodeBye());
    await peer.closed();
    await stillServing();
  });

  test('a wrong digest: VERDICT ERR_HASH_MISMATCH carrying the digest the receiver computed', async () => {
    const peer = await session();
    peer.send(offer('wrong.bin', 5));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(data(Buffer.from('hello')));
    peer.send(encodeEnd(Buffer.alloc(32, 0), Buffer.from(sha256(payloadOf(offer('wrong.bin', 5))), 'hex')));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_HASH_MISMATCH', digest: sha256(Buffer.from('hello')) });
    peer.send(encodeBye());
    await peer.closed();
    await stillServing();
  });

  test('an offer altered in transit (the name the receiver saw is not the one sent): ERR_HASH_MISMATCH, nothing saved', async () => {
    const peer = await session();
    const sent = offer('real-name.txt', 5);
    const altered = Buffer.from(sent);
    altered[8 + 24]! ^= 0x01; // "r" becomes "s" on the way
    peer.send(altered);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(data(Buffer.from('hello')));
    peer.send(endFor(Buffer.from('hello'), sent));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_HASH_MISMATCH' });
    peer.send(encodeBye());
    await peer.closed();
    await stillServing();
  });

  test('an END digest of the wrong length: ERR_MALFORMED_PAYLOAD', async () => {
    const peer = await session();
    peer.send(offer('short-digest.bin', 5));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(data(Buffer.from('hello')));
    peer.send(encodeEnd(Buffer.alloc(16, 0), Buffer.alloc(16, 0)));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Abort, code: 'ERR_MALFORMED_PAYLOAD' });
    await peer.closed();
    await receiverReported('ERR_MALFORMED_PAYLOAD');
    await stillServing();
  });
});

describe('frames out of order', () => {
  test.each([
    ['DATA before the offer', () => [encodeHello([HashId.Sha256]), data(Buffer.from('x'))]],
    ['OFFER before HELLO', () => [offer('early.txt', 1)]],
    ['END with no file', () => [encodeHello([HashId.Sha256]), encodeEnd(Buffer.alloc(32), Buffer.alloc(32))]],
    ['a receiver-only frame from the sender', () => [encodeHello([HashId.Sha256]), rawFrame(FrameType.Accept, Buffer.alloc(8))]],
    ['a heartbeat from the sender (only receivers send PROGRESS)', () => [encodeHello([HashId.Sha256]), encodeHeartbeat(0)]],
  ])('%s: ERR_UNEXPECTED_FRAME', async (_label, frames) => {
    const peer = await rawConnect(rx.port);
    for (const f of frames()) peer.send(f);
    const last = await within(
      (async () => {
        await peer.closed();
        return peer.frames.at(-1);
      })(),
      5000,
    );
    expect(last).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
    await stillServing();
  });

  test('an unknown hash algorithm: REFUSE ERR_UNSUPPORTED_HASH', async () => {
    const peer = await session();
    peer.send(encodeOffer({ size: 1, mtimeMs: 0, mode: 0o644, algorithm: 99, name: 'h.txt' }));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Refuse, code: 'ERR_UNSUPPORTED_HASH' });
    peer.send(encodeBye());
    await peer.closed();
    await stillServing();
  });
});
