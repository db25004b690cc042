import { describe, expect, test } from 'vitest';
import { EXAMPLE, EXAMPLE_RECEIVER_STREAM, EXAMPLE_SENDER_STREAM, MALFORMED, rawFrame, readCapture } from '../fixtures/index.js';
import { FrameType, HashId, HEADER_SIZE } from '../src/protocol/constants.js';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { exitCodeOf } from '../src/exit-codes.js';
import { FerryError, codeOfWireStatus, wireStatusOf } from '../src/protocol/errors.js';
import {
  encodeAbort,
  encodeAccept,
  encodeBye,
  encodeEnd,
  encodeHello,
  encodeOffer,
  encodeRefuse,
  encodeVerdict,
  frameDataInPlace,
  payloadOf,
} from '../src/protocol/messages.js';
import { decodePieces, splits } from './support/decode.js';
import { sha256 } from './support/files.js';

const exampleOffer = { size: 5, mtimeMs: 1_700_000_000_000, mode: 0o644, algorithm: HashId.Sha256, name: 'hi.txt' };
const sha = Buffer.from(EXAMPLE.sha256, 'hex');
const offerSha = Buffer.from(EXAMPLE.offerSha256, 'hex');

describe('encoder matches docs/protocol.md byte for byte', () => {
  test('worked example, sender frames', () => {
    expect(encodeHello([HashId.Sha256])).toEqual(EXAMPLE.senderFrames.hello);
    expect(encodeOffer(exampleOffer)).toEqual(EXAMPLE.senderFrames.offer);
    const buffer = Buffer.alloc(HEADER_SIZE + 5 + 1);
    EXAMPLE.content.copy(buffer, HEADER_SIZE);
    expect(frameDataInPlace(buffer, 5)).toEqual(EXAMPLE.senderFrames.data);
    expect(encodeEnd(sha, offerSha)).toEqual(EXAMPLE.senderFrames.end);
    expect(encodeBye()).toEqual(EXAMPLE.senderFrames.bye);
  });

  test('worked example, receiver frames', () => {
    expect(encodeHello([HashId.Blake3, HashId.Sha256])).toEqual(EXAMPLE.receiverFrames.hello);
    expect(encodeAccept(0)).toEqual(EXAMPLE.receiverFrames.accept);
    expect(encodeVerdict('OK', sha)).toEqual(EXAMPLE.receiverFrames.verdict);
  });

  test("END's second digest is SHA-256 of the OFFER payload as sent", () => {
    expect(sha256(payloadOf(EXAMPLE.senderFrames.offer))).toBe(EXAMPLE.offerSha256);
  });

  test('the .bin captures are the documented sessions', () => {
    expect(readCapture('example-sender.bin')).toEqual(EXAMPLE_SENDER_STREAM);
    expect(readCapture('example-receiver.bin')).toEqual(EXAMPLE_RECEIVER_STREAM);
  });

  test('messages are cut to 1024 bytes without splitting a UTF-8 character', () => {
    const frame = encodeRefuse('ERR_EXISTS', 'é'.repeat(600));
    const decoded = decodePieces([frame]);
    expect(decoded.error).toBeUndefined();
    expect(decoded.frames[0]).toMatchObject({ code: 'ERR_EXISTS', message: 'é'.repeat(512) });
  });

  test('HELLO: unknown feature bits and algorithm ids decode, to be ignored (protocol.md 5.1), not rejected', () => {
    const decoded = decodePieces([encodeHello([0xee, HashId.Sha256], 0x0100_0000)]);
    expect(decoded.error).toBeUndefined();
    expect(decoded.frames[0]).toMatchObject({ features: 0x0100_0000, algorithms: [0xee, HashId.Sha256] });
  });

  test('negative mtimes survive (files from before 1970)', () => {
    const decoded = decodePieces([encodeOffer({ ...exampleOffer, mtimeMs: -86_400_000 })]);
    expect(decoded.frames[0]).toMatchObject({ mtimeMs: -86_400_000 });
  });
});

describe('decoder', () => {
  const expectedSender = [
    { type: FrameType.Hello, features: 0, algorithms: [HashId.Sha256] },
    {
      type: FrameType.Offer,
      flags: 0,
      size: 5,
      mtimeMs: 1_700_000_000_000,
      mode: 0o644,
      algorithm: HashId.Sha256,
      name: Buffer.from('hi.txt').toString('hex'),
      payload: payloadOf(EXAMPLE.senderFrames.offer).toString('hex'),
    },
    { type: FrameType.End, digests: EXAMPLE.sha256 + EXAMPLE.offerSha256 },
    { type: FrameType.Bye },
  ];

  test('the sender capture decodes identically however TCP splits it', () => {
    let cases = 0;
    for (const pieces of splits(EXAMPLE_SENDER_STREAM)) {
      const decoded = decodePieces(pieces);
      expect(decoded.error).toBeUndefined();
      expect(decoded.frames).toEqual(expectedSender);
      expect(decoded.data).toEqual(EXAMPLE.content);
      cases++;
    }
    expect(cases).toBe(EXAMPLE_SENDER_STREAM.length + 2);
  });

  test('the receiver capture decodes identically however TCP splits it', () => {
    for (const pieces of splits(EXAMPLE_RECEIVER_STREAM)) {
      const decoded = decodePieces(pieces);
      expect(decoded.error).toBeUndefined();
      expect(decoded.frames).toEqual([
        { type: FrameType.Hello, features: 0, algorithms: [HashId.Blake3, HashId.Sha256] },
        { type: FrameType.Accept, offset: 0, prefixDigest: '' },
        { type: FrameType.Verdict, code: 'OK', digest: EXAMPLE.sha256, message: '' },
      ]);
    }
  });

  test('many frames in one chunk (coalesced segments)', () => {
    const stream = Buffer.concat([EXAMPLE_SENDER_STREAM, EXAMPLE_SENDER_STREAM, EXAMPLE_SENDER_STREAM]);
    const decoded = decodePieces([stream]);
    expect(decoded.frames).toHaveLength(12);
    expect(decoded.data.toString()).toBe('hellohellohello');
  });

  for (const fixture of MALFORMED) {
    test(`rejects ${fixture.name} with ${fixture.code}, at every split`, () => {
      for (const pieces of splits(fixture.bytes)) {
        expect(decodePieces(pieces).error).toBe(fixture.code);
      }
    });
  }

  test('an oversized length fails on the header alone: nothing is buffered', () => {
    const decoder = new FrameDecoder({ onFrame: () => {}, onData: () => {} });
    const header = rawFrame(FrameType.Data, '', { length: 0xffffffff, end: null });
    expect(() => decoder.push(header)).toThrow(expect.objectContaining({ code: 'ERR_FRAME_TOO_LARGE' }));
  });

  test('a bad start marker fails on its first byte, without waiting for more', () => {
    const decoder = new FrameDecoder({ onFrame: () => {}, onData: () => {} });
    expect(() => decoder.push(Buffer.from([0x16]))).toThrow(expect.objectContaining({ code: 'ERR_BAD_MAGIC' }));
  });

  test('after an error the decoder stays failed', () => {
    const decoder = new FrameDecoder({ onFrame: () => {}, onData: () => {} });
    expect(() => decoder.push(Buffer.from('x'))).toThrow(FerryError);
    expect(() => decoder.push(EXAMPLE.senderFrames.bye)).toThrow(expect.objectContaining({ code: 'ERR_BAD_MAGIC' }));
  });

  test('a stream cut inside a frame is ERR_TRUNCATED; cut between frames is clean', () => {
    const stream = EXAMPLE_SENDER_STREAM;
    const boundaries = new Set<number>([0]);
    let at = 0;
    for (const f of Object.values(EXAMPLE.senderFrames)) boundaries.add((at += f.length));
    for (let cut = 0; cut <= stream.length; cut++) {
      const { error } = decodePieces([stream.subarray(0, cut)]);
      expect(error).toBe(boundaries.has(cut) ? undefined : 'ERR_TRUNCATED');
    }
  });

  test('DATA payloads are views of the input, not copies', () => {
    const pieces: Buffer[] = [];
    const decoder = new FrameDecoder({ onFrame: () => {}, onData: (p) => pieces.push(p) });
    const chunk = rawFrame(FrameType.Data, Buffer.alloc(1000, 7));
    decoder.push(chunk);
    expect(pieces).toHaveLength(1);
    expect(pieces[0]!.buffer).toBe(chunk.buffer);
    expect(pieces[0]!.byteOffset).toBe(chunk.byteOffset + HEADER_SIZE);
  });

  test('pause() holds frames until resume(), in order', () => {
    const seen: number[] = [];
    const decoder: FrameDecoder = new FrameDecoder({
      onFrame: (f) => {
        seen.push(f.type);
        decoder.pause();
      },
      onData: () => {},
    });
    decoder.push(EXAMPLE_SENDER_STREAM);
    expect(seen).toEqual([FrameType.Hello]);
    expect(decoder.buffered).toBe(EXAMPLE_SENDER_STREAM.length - EXAMPLE.senderFrames.hello.length);
    decoder.resume();
    decoder.resume();
    decoder.resume();
    expect(seen).toEqual([FrameType.Hello, FrameType.Offer, FrameType.End, FrameType.Bye]);
    expect(decoder.atFrameBoundary).toBe(true);
  });
});

describe('status codes', () => {
  test('every wire code round-trips and maps to its documented exit code', () => {
    expect(exitCodeOf('ERR_EXISTS')).toBe(4);
    expect(exitCodeOf('ERR_HASH_MISMATCH')).toBe(3);
    expect(exitCodeOf('ERR_TIMEOUT')).toBe(1);
    expect(exitCodeOf('ERR_USAGE')).toBe(2);
    expect(exitCodeOf('ERR_SIGINT')).toBe(130);
    for (const code of ['ERR_EXISTS', 'ERR_BAD_NAME', 'ERR_HASH_MISMATCH', 'ERR_IO', 'ERR_TRUNCATED'] as const) {
      expect(codeOfWireStatus(wireStatusOf(code))).toBe(code);
    }
  });

  test('unknown wire statuses read as ERR_TRANSFER; signals travel as ERR_INTERRUPTED', () => {
    expect(codeOfWireStatus(0x7777)).toBe('ERR_TRANSFER');
    expect(codeOfWireStatus(wireStatusOf('ERR_SIGINT'))).toBe('ERR_INTERRUPTED');
    expect(codeOfWireStatus(wireStatusOf('ERR_CONNECT'))).toBe('ERR_TRANSFER');
    const decoded = decodePieces([encodeAbort('ERR_SIGTERM', 'bye')]);
    expect(decoded.frames[0]).toMatchObject({ type: FrameType.Abort, code: 'ERR_INTERRUPTED', message: 'bye' });
  });
});
