/**
 * The OFFER flags of re-sending (docs/protocol.md, section 5.3): PROBE
 * (0x08) and REPLACE (0x10), the combinations that are malformed, and the
 * status ERR_NOT_HELD (0x0109) that answers a probe and is never a failure.
 */
import { describe, expect, test } from 'vitest';
import { FrameType, HashId, MAX_EAGER_BYTES, OfferFlag } from '../../src/protocol/constants.js';
import { exitCodeOf } from '../../src/exit-codes.js';
import { codeOfWireStatus, wireStatusOf } from '../../src/protocol/errors.js';
import { encodeOffer, encodeVerdict } from '../../src/protocol/messages.js';
import { decodePieces, splits } from '../support/decode.js';

const offer = (flags: number, size = 5): Buffer => encodeOffer({ size, mtimeMs: 1_700_000_000_000, mode: 0o644, algorithm: HashId.Sha256, name: 'a/b.txt', flags });

describe('PROBE and REPLACE decode', () => {
  test.each([
    ['PROBE', OfferFlag.Probe, 5],
    ['PROBE of a file over the eager size (a probe carries no data)', OfferFlag.Probe, MAX_EAGER_BYTES + 1],
    ['PROBE of a folder (all its files at once)', OfferFlag.Probe | OfferFlag.Directory, 0],
    ['REPLACE', OfferFlag.Replace, 5],
    ['REPLACE with EAGER', OfferFlag.Replace | OfferFlag.Eager, 5],
    ['REPLACE with STREAM', OfferFlag.Replace | OfferFlag.Stream, 0],
  ])('%s', (_label, flags, size) => {
    const decoded = decodePieces([offer(flags, size)]);
    expect(decoded.error).toBeUndefined();
    expect(decoded.frames).toEqual([expect.objectContaining({ type: FrameType.Offer, flags, size })]);
  });

  test('a probe decodes the same split at every offset', () => {
    const frame = offer(OfferFlag.Probe);
    for (const pieces of splits(frame)) {
      const decoded = decodePieces(pieces);
      expect(decoded.error).toBeUndefined();
      expect(decoded.frames).toEqual([expect.objectContaining({ flags: OfferFlag.Probe, name: Buffer.from('a/b.txt').toString('hex') })]);
    }
  });
});

describe('malformed combinations are ERR_MALFORMED_PAYLOAD', () => {
  test.each([
    ['PROBE with EAGER', OfferFlag.Probe | OfferFlag.Eager, 5],
    ['PROBE of a folder with a size', OfferFlag.Probe | OfferFlag.Directory, 5],
    ['PROBE with STREAM', OfferFlag.Probe | OfferFlag.Stream, 0],
    ['PROBE with REPLACE', OfferFlag.Probe | OfferFlag.Replace, 5],
    ['REPLACE with DIRECTORY', OfferFlag.Replace | OfferFlag.Directory, 0],
    ['a flag still unknown (0x20)', 0x20, 5],
  ])('%s', (_label, flags, size) => {
    expect(decodePieces([offer(flags, size)]).error).toBe('ERR_MALFORMED_PAYLOAD');
  });
});

describe('ERR_NOT_HELD', () => {
  test('travels as 0x0109 and maps to exit 0: answering a probe is never a failure', () => {
    expect(wireStatusOf('ERR_NOT_HELD')).toBe(0x0109);
    expect(codeOfWireStatus(0x0109)).toBe('ERR_NOT_HELD');
    expect(exitCodeOf('ERR_NOT_HELD')).toBe(0);
  });

  test('a VERDICT ERR_NOT_HELD with no digest round-trips', () => {
    const decoded = decodePieces([encodeVerdict('ERR_NOT_HELD', Buffer.alloc(0))]);
    expect(decoded.error).toBeUndefined();
    expect(decoded.frames).toEqual([{ type: FrameType.Verdict, code: 'ERR_NOT_HELD', digest: '', message: '' }]);
  });
});
