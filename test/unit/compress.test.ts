/**
 * --compress in memory (src/compress.ts, docs/protocol.md 5.6.1): the codec,
 * the "shrinks enough" rule, the receiver's bounded decode (a bomb is refused
 * by its error code within the bound), ZDATA split at every offset, ZDATA
 * where the state or the HELLO does not allow it, and the sender's pipeline
 * keeping order and giving back every buffer.
 */
import { randomBytes } from 'node:crypto';
import { brotliCompressSync, constants } from 'node:zlib';
import { afterEach, describe, expect, test } from 'vitest';
import { CompressedChunks, compressChunk, decompressChunk, shrinksEnough, type FrameWriter } from '../../src/compress.js';
import { Connection } from '../../src/connection.js';
import { FrameType, HEADER_SIZE, MAX_DATA_BYTES } from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import type { FerryError } from '../../src/protocol/errors.js';
import { encodeEnd, encodeFrame, encodeOffer, frameDataInPlace } from '../../src/protocol/messages.js';
import { RECEIVER_STATES } from '../../src/protocol/states.js';
import { asSocket, cutAt, duplexPair } from '../support/duplex-pair.js';
import { WirePeer, within } from '../support/wire-peer.js';

const MiB = 1024 * 1024;
/** Text that compresses as source code does (to about a fifth), not as a run of one byte. */
const TEXT = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i}: const value${i % 97} = compute(${(i * 7919) % 1000});\n`).join('')).subarray(0, MiB);
const RANDOM = randomBytes(MiB);
/** 64 MiB of zeros in a few hundred bytes (quality 1: made in milliseconds). */
const BOMB = brotliCompressSync(Buffer.alloc(64 * MiB), { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });

const open: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const c of open.splice(0)) c.destroy();
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as FerryError).code;
  }
  return undefined;
}

describe('the codec', () => {
  test('a chunk of text goes compressed, to under a third, and decodes to itself', async () => {
    const z = await compressChunk(TEXT);
    expect(z).not.toBeNull();
    expect(z!.length).toBeLessThan(TEXT.length / 3);
    expect(decompressChunk(z!, TEXT.length).equals(TEXT)).toBe(true);
  });

  test('random bytes do not shrink enough: null, so the chunk goes as DATA', async () => {
    expect(await compressChunk(RANDOM)).toBeNull();
    expect(await compressChunk(Buffer.alloc(0))).toBeNull();
  });

  test('the rule: at least 1/16 saved', () => {
    expect(shrinksEnough(1600, 1500)).toBe(true);
    expect(shrinksEnough(1600, 1501)).toBe(false);
    expect(shrinksEnough(16, 16)).toBe(false);
  });

  test('a bomb (64 MiB of zeros in a few KiB) is refused by the file bound, ERR_SIZE_MISMATCH, or by the frame bound, ERR_MALFORMED_PAYLOAD', () => {
    const bomb = BOMB;
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(codeOf(() => decompressChunk(bomb, 5))).toBe('ERR_SIZE_MISMATCH');
    expect(codeOf(() => decompressChunk(bomb, 5, 'ERR_TOO_LARGE'))).toBe('ERR_TOO_LARGE');
    expect(codeOf(() => decompressChunk(bomb, Number.MAX_SAFE_INTEGER))).toBe('ERR_MALFORMED_PAYLOAD');
    // Exactly at the bound is fine: 8 MiB of zeros is one chunk's worth.
    expect(decompressChunk(brotliCompressSync(Buffer.alloc(MAX_DATA_BYTES)), Number.MAX_SAFE_INTEGER).length).toBe(MAX_DATA_BYTES);
  });

  test('a payload that is no brotli stream, or decodes to nothing, is ERR_MALFORMED_PAYLOAD; no room left is the file bound', () => {
    expect(codeOf(() => decompressChunk(Buffer.from('not brotli at all'), MiB))).toBe('ERR_MALFORMED_PAYLOAD');
    expect(codeOf(() => decompressChunk(brotliCompressSync(Buffer.alloc(0)), MiB))).toBe('ERR_MALFORMED_PAYLOAD');
    expect(codeOf(() => decompressChunk(brotliCompressSync(Buffer.from('x')), 0))).toBe('ERR_SIZE_MISMATCH');
  });
});

describe('the decoder', () => {
  test('a ZDATA frame split at every offset arrives whole, once, as the payload sent', () => {
    const payload = brotliCompressSync(Buffer.from('hello, compressed world'));
    const stream = Buffer.concat([encodeFrame(FrameType.ZData, payload), encodeFrame(FrameType.Bye)]);
    for (let at = 1; at < stream.length; at++) {
      const got: Buffer[] = [];
      const frames: number[] = [];
      const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f.type), onData: () => {}, onCompressed: (p) => got.push(Buffer.from(p)) });
      decoder.push(stream.subarray(0, at));
      decoder.push(stream.subarray(at));
      expect(got, `split at ${at}`).toEqual([payload]);
      expect(frames).toEqual([FrameType.Bye]);
    }
  });

  test('ZDATA that may not come now is ERR_UNEXPECTED_FRAME on its header alone, before a payload byte is held', () => {
    // The secure handshake's decoder has no onCompressed; a connection says no outside a file or without the HELLO bit.
    const header = encodeFrame(FrameType.ZData, Buffer.alloc(MAX_DATA_BYTES)).subarray(0, HEADER_SIZE);
    const bare = new FrameDecoder({ onFrame: () => {}, onData: () => {} });
    expect(codeOf(() => bare.push(header))).toBe('ERR_UNEXPECTED_FRAME');
    let asked = 0;
    const refusing = new FrameDecoder({ onFrame: () => {}, onData: () => {}, onCompressed: () => {}, compressedAllowed: () => (asked++, false) });
    expect(codeOf(() => refusing.push(header))).toBe('ERR_UNEXPECTED_FRAME');
    expect(asked).toBe(1);
    const willing = new FrameDecoder({ onFrame: () => {}, onData: () => {}, onCompressed: () => {}, compressedAllowed: () => true });
    willing.push(header);
    expect(Math.abs(willing.buffered)).toBe(0);
  });
});

describe('ZDATA on a receiving connection', () => {
  const OFFER = encodeOffer({ size: 5, mtimeMs: 0, mode: 0o644, algorithm: 2, name: 'a.txt' });
  const END = encodeEnd(Buffer.alloc(32), Buffer.alloc(32));
  const HELLO_Z = encodeFrame(FrameType.ZData, brotliCompressSync(Buffer.from('hello')));

  function receiving(acceptsCompressed: boolean, split?: number): { conn: Connection<typeof RECEIVER_STATES>; peer: WirePeer; data: Buffer[]; received: () => number } {
    const [mine, theirs] = duplexPair(split === undefined ? {} : { split: cutAt(split) });
    const conn = new Connection(asSocket(mine), 10_000, RECEIVER_STATES);
    open.push(conn);
    conn.content.acceptsCompressed = acceptsCompressed;
    const data: Buffer[] = [];
    let received = 0;
    conn.setDataHandler(
      (piece) => {
        received += piece.length;
        data.push(Buffer.from(piece));
      },
      { room: () => 5 - received, tooMuch: 'ERR_SIZE_MISMATCH' },
    );
    return { conn, peer: new WirePeer(theirs), data, received: () => received };
  }

  test('negotiated: DATA and ZDATA interleave in one file and count decoded bytes, however the stream is split', async () => {
    const stream = Buffer.concat([OFFER, encodeFrame(FrameType.Data, Buffer.from('he')), encodeFrame(FrameType.ZData, brotliCompressSync(Buffer.from('llo'))), END]);
    for (let at = 1; at < stream.length; at++) {
      const { conn, peer, data } = receiving(true, at);
      peer.write(stream);
      await within(conn.expect('IDLE'), `OFFER, split at ${at}`);
      expect((await within(conn.expect('RECEIVING'), `END, split at ${at}`)).type).toBe(FrameType.End);
      expect(Buffer.concat(data).toString()).toBe('hello');
      conn.destroy();
    }
  });

  test('not offered in HELLO: ZDATA where DATA would be fine is ERR_UNEXPECTED_FRAME, and the peer hears so', async () => {
    const { conn, peer, data } = receiving(false);
    peer.write(Buffer.concat([OFFER, HELLO_Z, END]));
    await within(conn.expect('IDLE'), 'OFFER');
    const err = await within(conn.expect('RECEIVING').then(() => null, (e: FerryError) => e), 'the failure');
    expect(err?.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
    expect(data).toEqual([]);
  });

  test('offered, but outside a transfer (no data handler, IDLE): ERR_UNEXPECTED_FRAME', async () => {
    const { conn, peer } = receiving(true);
    conn.setDataHandler(null);
    peer.write(HELLO_Z);
    const err = await within(conn.expect('IDLE').then(() => null, (e: FerryError) => e), 'the failure');
    expect(err?.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
  });

  test('a bomb for an offer of 5 bytes: ABORT ERR_SIZE_MISMATCH, not a byte delivered', async () => {
    const { conn, peer, received } = receiving(true);
    peer.write(Buffer.concat([OFFER, encodeFrame(FrameType.ZData, BOMB), END]));
    await within(conn.expect('IDLE'), 'OFFER');
    const err = await within(conn.expect('RECEIVING').then(() => null, (e: FerryError) => e), 'the failure');
    expect(err?.code).toBe('ERR_SIZE_MISMATCH');
    expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_SIZE_MISMATCH' });
    expect(received()).toBe(0);
  });
});

describe('the sender pipeline', () => {
  test('text as ZDATA, random as DATA, in order, and every buffer given back', async () => {
    const frames: Array<{ type: number; bytes: Buffer }> = [];
    const writer: FrameWriter = {
      writeThen: (bytes, done) => (frames.push({ type: bytes.readUInt16BE(2), bytes: Buffer.from(bytes) }), done(), true),
      writePartsThen: (parts, done) => (frames.push({ type: parts[0]!.readUInt16BE(2), bytes: Buffer.concat(parts) }), done(), true),
    };
    const chunks = new CompressedChunks(writer, frameDataInPlace);
    const order = [TEXT, RANDOM, TEXT, RANDOM, RANDOM, TEXT];
    let released = 0;
    for (const content of order) {
      const buffer = Buffer.alloc(content.length + HEADER_SIZE + 1);
      content.copy(buffer, HEADER_SIZE);
      await chunks.push(buffer, content.length, () => released++);
    }
    await chunks.flush();
    expect(released).toBe(order.length);
    expect(frames.map((f) => f.type)).toEqual(order.map((c) => (c === TEXT ? FrameType.ZData : FrameType.Data)));
    const decoded = frames.map((f) => {
      const payload = f.bytes.subarray(HEADER_SIZE, f.bytes.length - 1);
      return f.type === FrameType.ZData ? decompressChunk(payload, MiB) : payload;
    });
    expect(Buffer.concat(decoded).equals(Buffer.concat(order))).toBe(true);
  });
});
