/**
 * Property tests on the decoder and the receiver's verdict logic: any split
 * of a valid stream decodes identically, and no mutation of one makes the
 * receiver verify anything other than what was sent — never a false success,
 * never a crash.
 *
 * The runs are seeded so CI is deterministic; FERRY_FC_SEED=<n> explores
 * another seed (a failure prints the seed and path to replay it).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { HashId, HEADER_SIZE } from '../src/protocol/constants.js';
import { FerryError } from '../src/protocol/errors.js';
import { encodeBye, encodeEnd, encodeHello, encodeOffer, frameDataInPlace, payloadOf } from '../src/protocol/messages.js';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { createHash } from 'node:crypto';
import { decodePieces } from './support/decode.js';

fc.configureGlobal({ seed: Number(process.env.FERRY_FC_SEED ?? 0x5eed) | 0 });

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** A valid sender stream for `content` split into DATA frames of `chunk` bytes. */
function senderStream(content: Buffer, chunk: number, name: string): Buffer {
  const offer = encodeOffer({ size: content.length, mtimeMs: 0, mode: 0o600, algorithm: HashId.Sha256, name });
  const frames = [encodeHello([HashId.Sha256]), offer];
  for (let at = 0; at < content.length; at += chunk) {
    const piece = content.subarray(at, at + chunk);
    const buffer = Buffer.alloc(HEADER_SIZE + piece.length + 1);
    piece.copy(buffer, HEADER_SIZE);
    frames.push(frameDataInPlace(buffer, piece.length));
  }
  frames.push(encodeEnd(sha(content), sha(payloadOf(offer))), encodeBye());
  return Buffer.concat(frames);
}

/** Cuts `stream` at the given fractions. */
function cut(stream: Buffer, fractions: number[]): Buffer[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * stream.length)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    pieces.push(stream.subarray(last, p));
    last = p;
  }
  pieces.push(stream.subarray(last));
  return pieces;
}

/**
 * What a receiver concludes from a stream: 'verified' only if the stream
 * decodes, exactly `size` bytes arrive, and both digests of END match the
 * content and the offer as received (what src/receiver checks).
 */
function verdict(pieces: Buffer[]): 'verified' | 'mismatch' | 'protocol-error' {
  return receive(pieces).verdict;
}

/** The verdict, and on 'verified' the content and OFFER payload it was given for. */
function receive(pieces: Buffer[]): { verdict: 'verified' | 'mismatch' | 'protocol-error'; content?: Buffer; offer?: Buffer } {
  let offered = -1;
  let offerPayload = Buffer.alloc(0);
  let digests: Buffer | null = null;
  const data: Buffer[] = [];
  const decoder = new FrameDecoder({
    onFrame: (f) => {
      if (f.type === 0x0010) {
        offered = f.size;
        offerPayload = Buffer.from(f.payload);
      }
      if (f.type === 0x0021) digests = Buffer.from(f.digests);
    },
    onData: (p) => void data.push(Buffer.from(p)),
  });
  try {
    for (const p of pieces) decoder.push(p);
    decoder.end();
  } catch (err) {
    expect(err).toBeInstanceOf(FerryError);
    return { verdict: 'protocol-error' };
  }
  const content = Buffer.concat(data);
  const expected = Buffer.concat([sha(content), sha(offerPayload)]);
  if (digests === null || offered !== content.length) return { verdict: 'mismatch' };
  return expected.equals(digests) ? { verdict: 'verified', content, offer: offerPayload } : { verdict: 'mismatch' };
}

const contentArb = fc.uint8Array({ minLength: 0, maxLength: 3000 }).map((a) => Buffer.from(a));
const nameArb = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter((s) => Buffer.byteLength(s) <= 255);

describe('decoder properties', () => {
  test('any split of any valid stream decodes to the same frames and bytes', () => {
    fc.assert(
      fc.property(contentArb, fc.integer({ min: 1, max: 700 }), nameArb, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }), (content, chunk, name, fractions) => {
        const stream = senderStream(content, chunk, name);
        const whole = decodePieces([stream]);
        const split = decodePieces(cut(stream, fractions));
        expect(whole.error).toBeUndefined();
        expect(split).toEqual(whole);
        expect(split.data.equals(content)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  // A flip may land where the protocol ignores it (HELLO's reserved feature
  // bits, an unknown algorithm id in HELLO's list) and the file still arrives
  // whole: that is correct. What must never happen is a 'verified' for content
  // or metadata other than what was sent.
  test('any mutation of a valid stream is rejected, detected, or harmless: never a verified wrong file', () => {
    fc.assert(
      fc.property(
        contentArb.filter((c) => c.length > 0),
        fc.integer({ min: 1, max: 700 }),
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
        (content, chunk, flips, fractions) => {
          const stream = Buffer.from(senderStream(content, chunk, 'f.bin'));
          const sent = receive([stream]);
          expect(sent.verdict).toBe('verified');
          // Copied: the flips below change the stream in place.
          const offer = Buffer.from(sent.offer!);
          // XOR distinct positions with non-zero masks: the stream really changes.
          const seen = new Set<number>();
          for (const [where, mask] of flips) {
            const at = Math.floor(where * stream.length);
            if (seen.has(at)) continue;
            seen.add(at);
            stream[at]! ^= mask;
          }
          const got = receive(cut(stream, fractions));
          if (got.verdict === 'verified') {
            expect(got.content!.equals(content)).toBe(true);
            expect(got.offer!.equals(offer)).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a flip inside the OFFER (name, size, mode, mtime) is never verified', () => {
    fc.assert(
      fc.property(contentArb, fc.integer({ min: 0, max: 23 + 5 }), fc.integer({ min: 1, max: 255 }), (content, at, mask) => {
        const stream = Buffer.from(senderStream(content, 512, 'f.bin'));
        const offerStart = encodeHello([HashId.Sha256]).length + HEADER_SIZE;
        stream[offerStart + at]! ^= mask;
        expect(verdict([stream])).not.toBe('verified');
      }),
      { numRuns: 300 },
    );
  });

  test('truncating a valid stream anywhere before its end is never verified', () => {
    fc.assert(
      fc.property(contentArb, fc.integer({ min: 1, max: 700 }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (content, chunk, where) => {
        const stream = senderStream(content, chunk, 'f.bin');
        // Cutting inside or right after END's frame; BYE alone missing is not a data loss.
        const end = stream.length - encodeBye().length;
        const at = Math.floor(where * end);
        expect(verdict([stream.subarray(0, at)])).not.toBe('verified');
      }),
      { numRuns: 300 },
    );
  });

  test('random bytes never crash the decoder: it decodes or throws a FerryError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const { error } = decodePieces([Buffer.from(bytes)]);
        if (error !== undefined) expect(error).toMatch(/^ERR_/);
      }),
      { numRuns: 1000 },
    );
  });
});
