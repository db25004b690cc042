import { expect, test } from 'vitest';
import { SUPPORTED_ALGORITHMS, algorithmByName, batchedHasher, chooseAlgorithm } from '../src/hash.js';
import { HashId } from '../src/protocol/constants.js';

const digestOf = (name: string, parts: Buffer[]): string => {
  const h = algorithmByName(name)!.create();
  for (const p of parts) h.update(p);
  return h.digest().toString('hex');
};

test('BLAKE3 is available here and preferred', () => {
  expect(SUPPORTED_ALGORITHMS.map((a) => a.name)).toEqual(['blake3', 'sha256']);
});

test('known answers: empty input and "abc"', () => {
  expect(digestOf('blake3', [])).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  expect(digestOf('blake3', [Buffer.from('abc')])).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
  expect(digestOf('sha256', [Buffer.from('abc')])).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('incremental updates with views equal one update (the receiver hashes socket views)', () => {
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff));
  const parts = [data.subarray(0, 1), data.subarray(1, 1025), data.subarray(1025, 4096), data.subarray(4096)];
  for (const name of ['blake3', 'sha256']) expect(digestOf(name, parts)).toBe(digestOf(name, [data]));
});

test('the batched hasher gives the same digests as one update, whatever the piece sizes, and keeps going after a digest', () => {
  const data = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 131 + (i >> 7)) & 0xff));
  // Pieces smaller than, equal to and larger than the batch, some crossing it while partly filled.
  const sizes = [1, 63, 64, 65, 200, 1, 64, 4000, 0, 17, 128, 3];
  for (const name of ['blake3', 'sha256']) {
    const batched = batchedHasher(algorithmByName(name)!.create(), 64);
    let at = 0;
    for (let i = 0; at < data.length; i++) {
      const piece = data.subarray(at, at + sizes[i % sizes.length]!);
      batched.update(piece);
      at += piece.length;
      if (i === 5) expect(batched.digest().toString('hex')).toBe(digestOf(name, [data.subarray(0, at)]));
    }
    expect(batched.digest().toString('hex')).toBe(digestOf(name, [data]));
  }
});

test('algorithm choice: our preference among what the peer lists', () => {
  expect(chooseAlgorithm([HashId.Sha256, HashId.Blake3])?.name).toBe('blake3');
  expect(chooseAlgorithm([HashId.Sha256, 99])?.name).toBe('sha256');
  expect(chooseAlgorithm([99])).toBeUndefined();
  expect(chooseAlgorithm([HashId.Sha256], algorithmByName('blake3'))).toBeUndefined();
});
