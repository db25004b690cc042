import { createHash, hkdfSync, scryptSync } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { describe, expect, test, vi } from 'vitest';
import { FerryError } from '../src/protocol/errors.js';
import { CODE_ENTROPY_BITS, generateCode, normalizeCode } from '../src/secure/code.js';
import { tlsPsk } from '../src/secure/tls.js';
import { CodeGuard, sourceKey } from '../src/secure/limiter.js';
import { within } from './support/files.js';
import {
  FERRY_SPAKE2,
  M_HEX,
  N_HEX,
  P256_ORDER,
  SCRYPT,
  buildTranscript,
  passwordScalar,
  spake2Finish,
  spake2Start,
  tagsEqual,
} from '../src/secure/spake2.js';
import { WORDS } from '../src/secure/words.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const big = (hexString: string): bigint => BigInt(`0x${hexString}`);

/**
 * RFC 9382, Appendix B: the four test vectors of SPAKE2-P256-SHA256-HKDF-HMAC
 * (AAD empty). Note that an empty identity still enters TT as a zero length
 * (8 zero bytes), although section 3.3 says an absent identity is omitted:
 * the vectors are what implementations agree on. ferry always has both.
 */
const RFC9382_VECTORS = [
  {
    A: 'server',
    B: 'client',
    w: '2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f',
    x: '43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729',
    pA: '04a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c',
    y: 'dcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66be',
    pB: '0406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b7',
    K: '0412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d3325',
    TT:
      '06000000000000007365727665720600000000000000636c69656e74410000000000000004a56fa807caaa53a4d28dbb9853b9815c61a41111' +
      '8a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c41000000000000000406557e48' +
      '2bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591' +
      'a1e0b741000000000000000412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d' +
      '528501f907e04d97515fbe83db277b715d332520000000000000002ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f',
    hashTT: '0e0672dc86f8e45565d338b0540abe6915bdf72e2b35b5c9e5663168e960a91b',
    Ke: '0e0672dc86f8e45565d338b0540abe69',
    Ka: '15bdf72e2b35b5c9e5663168e960a91b',
    KcA: '00c12546835755c86d8c0db7851ae86f',
    KcB: 'a9fa3406c3b781b93d804485430ca27a',
    cA: '58ad4aa88e0b60d5061eb6b5dd93e80d9c4f00d127c65b3b35b1b5281fee38f0',
    cB: 'd3e2e547f1ae04f2dbdbf0fc4b79f8ecff2dff314b5d32fe9fcef2fb26dc459b',
  },
  {
    A: '',
    B: 'client',
    w: '0548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae',
    x: '403abbe3b1b4b9ba17e3032849759d723939a27a27b9d921c500edde18ed654b',
    pA: '04a897b769e681c62ac1c2357319a3d363f610839c4477720d24cbe32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a',
    y: '903023b6598908936ea7c929bd761af6039577a9c3f9581064187c3049d87065',
    pB: '04e0f816fd1c35e22065d5556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc',
    K: '048f83ec9f6e4f87cc6f9dc740bdc2769725f923364f01c84148c049a39a735ebda82eac03e00112fd6a5710682767cff5361f7e819e53d8d3c3a2922e0d837aa6',
    TT:
      '00000000000000000600000000000000636c69656e74410000000000000004a897b769e681c62ac1c2357319a3d363f610839c4477720d24cb' +
      'e32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a410000000000000004e0f816fd1c35e22065d5' +
      '556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc410000' +
      '0000000000048f83ec9f6e4f87cc6f9dc740bdc2769725f923364f01c84148c049a39a735ebda82eac03e00112fd6a5710682767cff5361f7e' +
      '819e53d8d3c3a2922e0d837aa620000000000000000548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae',
    hashTT: '642f05c473c2cd79909f9a841e2f30a70bf89b18180af97353ba198789c2b963',
    Ke: '642f05c473c2cd79909f9a841e2f30a7',
    Ka: '0bf89b18180af97353ba198789c2b963',
    KcA: 'c6be376fc7cd1301fd0a13adf3e7bffd',
    KcB: 'b7243f4ae60440a49b3f8cab3c1fba07',
    cA: '47d29e6666af1b7dd450d571233085d7a9866e4d49d2645e2df975489521232b',
    cB: '3313c5cefc361d27fb16847a91c2a73b766ffa90a4839122a9b70a2f6bd1d6df',
  },
  {
    A: 'server',
    B: '',
    w: '626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254',
    x: '07adb3db6bc623d3399726bfdbfd3d15a58ea776ab8a308b00392621291f9633',
    pA: '04f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b0',
    y: 'b6a4fc8dbb629d4ba51d6f91ed1532cf87adec98f25dd153a75accafafedec16',
    pB: '040c269d6be017dccb15182ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db',
    K: '0445ee233b8ecb51ebd6e7da3f307e88a1616bae2166121221fdc0dadb986afaf3ec8a988dc9c626fa3b99f58a7ca7c9b844bb3e8dd9554aafc5b53813504c1cbe',
    TT:
      '06000000000000007365727665720000000000000000410000000000000004f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211' +
      'c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b04100000000000000040c269d6be017dccb1518' +
      '2ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db410000' +
      '00000000000445ee233b8ecb51ebd6e7da3f307e88a1616bae2166121221fdc0dadb986afaf3ec8a988dc9c626fa3b99f58a7ca7c9b844bb3e' +
      '8dd9554aafc5b53813504c1cbe2000000000000000626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254',
    hashTT: '005184ff460da2ce59062c87733c299c3521297d736598fc0a1127600efa1afb',
    Ke: '005184ff460da2ce59062c87733c299c',
    Ka: '3521297d736598fc0a1127600efa1afb',
    KcA: 'f3da53604f0aeecea5a33be7bddf6edf',
    KcB: '9e3f86848736f159bd92b6e107ec6799',
    cA: 'bc9f9bbe99f26d0b2260e6456e05a86196a3307ec6663a18bf6ac825736533b2',
    cB: 'c2370e1bf813b086dff0d834e74425a06e6390f48f5411900276dcccc5a297ec',
  },
  {
    A: '',
    B: '',
    w: '7bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca',
    x: '8cef65df64bb2d0f83540c53632de911b5b24b3eab6cc74a97609fd659e95473',
    pA: '04a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46ca1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66',
    y: 'd7a66f64074a84652d8d623a92e20c9675c61cb5b4f6a0063e4648a2fdc02d53',
    pB: '04589f13218822710d98d8b2123a079041052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d',
    K: '041a3c03d51b452537ca2a1fea6110353c6d5ed483c4f0f86f4492ca3f378d40a994b4477f93c64d928edbbcd3e85a7c709b7ea73ee97986ce3d1438e135543772',
    TT:
      '00000000000000000000000000000000410000000000000004a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46c' +
      'a1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66410000000000000004589f13218822710d98d8b2123a079041' +
      '052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d410000000000000004' +
      '1a3c03d51b452537ca2a1fea6110353c6d5ed483c4f0f86f4492ca3f378d40a994b4477f93c64d928edbbcd3e85a7c709b7ea73ee97986ce3d' +
      '1438e13554377220000000000000007bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca',
    hashTT: 'fc6374762ba5cf11f4b2caa08b2cd1b9907ae0e26e8d6234318d91583cd74c86',
    Ke: 'fc6374762ba5cf11f4b2caa08b2cd1b9',
    Ka: '907ae0e26e8d6234318d91583cd74c86',
    KcA: '5dbd2f477166b7fb6d61febbd77a5563',
    KcB: '7689b4654407a5faeffdc8f18359d8a3',
    cA: 'dfb4db8d48ae5a675963ea5e6c19d98d4ea028d8e898dad96ea19a80ade95dca',
    cB: 'd0f0609d1613138d354f7e95f19fb556bf52d751947241e8c7118df5ef0ae175',
  },
];

describe('SPAKE2-P256-SHA256-HKDF-HMAC against RFC 9382 Appendix B', () => {
  for (const v of RFC9382_VECTORS) {
    test(`A='${v.A}', B='${v.B}': every intermediate value`, () => {
      const context = { idA: Buffer.from(v.A), idB: Buffer.from(v.B), aad: Buffer.alloc(0) };
      const a = spake2Start('A', big(v.w), big(v.x));
      const b = spake2Start('B', big(v.w), big(v.y));
      expect(hex(a.share)).toBe(v.pA);
      expect(hex(b.share)).toBe(v.pB);

      const ka = spake2Finish(a, b.share, context);
      const kb = spake2Finish(b, a.share, context);
      for (const keys of [ka, kb]) {
        expect(hex(keys.K)).toBe(v.K);
        expect(hex(keys.transcript)).toBe(v.TT);
        expect(hex(createHash('sha256').update(keys.transcript).digest())).toBe(v.hashTT);
        expect(hex(keys.Ke)).toBe(v.Ke);
        expect(hex(keys.Ka)).toBe(v.Ka);
        expect(hex(keys.KcA)).toBe(v.KcA);
        expect(hex(keys.KcB)).toBe(v.KcB);
        expect(hex(keys.cA)).toBe(v.cA);
        expect(hex(keys.cB)).toBe(v.cB);
      }
      expect(hex(buildTranscript(context.idA, context.idB, a.share, b.share, Buffer.from(v.K, 'hex'), big(v.w)))).toBe(v.TT);
    });
  }

  test('M and N are the RFC points, on the curve, and distinct from each other and from P', () => {
    const M = p256.Point.fromHex(M_HEX);
    const N = p256.Point.fromHex(N_HEX);
    expect(M.equals(N)).toBe(false);
    expect(M.equals(p256.Point.BASE)).toBe(false);
    expect(N.equals(p256.Point.BASE)).toBe(false);
  });
});

describe('SPAKE2 with ferry parameters', () => {
  const w = 0x1234567890abcdefn;

  test('both sides agree on Ke and each accepts the other tag; the identities and AAD are bound in', () => {
    const a = spake2Start('A', w);
    const b = spake2Start('B', w);
    const ka = spake2Finish(a, b.share);
    const kb = spake2Finish(b, a.share);
    expect(hex(ka.Ke)).toBe(hex(kb.Ke));
    expect(tagsEqual(kb.cA, ka.cA)).toBe(true);
    expect(tagsEqual(ka.cB, kb.cB)).toBe(true);
    expect(ka.transcript.subarray(8, 8 + 12).toString()).toBe('ferry sender');
    const otherAad = spake2Finish(a, b.share, { ...FERRY_SPAKE2, aad: Buffer.from('ferry v2') });
    expect(hex(otherAad.Ke)).toBe(hex(ka.Ke));
    expect(tagsEqual(otherAad.cB, kb.cB)).toBe(false);
  });

  test('different passwords: keys differ and neither tag verifies', () => {
    const a = spake2Start('A', w);
    const b = spake2Start('B', w + 1n);
    const ka = spake2Finish(a, b.share);
    const kb = spake2Finish(b, a.share);
    expect(hex(ka.Ke)).not.toBe(hex(kb.Ke));
    expect(tagsEqual(kb.cA, ka.cA)).toBe(false);
    expect(tagsEqual(ka.cB, kb.cB)).toBe(false);
  });

  test('fresh scalars every run: the same password never gives the same share twice', () => {
    expect(hex(spake2Start('A', w).share)).not.toBe(hex(spake2Start('A', w).share));
  });

  test('hostile shares are rejected with ERR_MALFORMED_PAYLOAD before any key exists', () => {
    const a = spake2Start('A', w);
    const b = spake2Start('B', w);
    const valid = Buffer.from(b.share);
    const offCurve = Buffer.concat([Buffer.from([0x04]), Buffer.alloc(64, 0)]);
    const wrongPrefix = Buffer.from(valid);
    wrongPrefix[0] = 0x06;
    const flipped = Buffer.from(valid);
    flipped[40]! ^= 0x01;
    const compressed = Buffer.concat([Buffer.from(p256.Point.fromHex(N_HEX).toBytes(true)), Buffer.alloc(32)]);
    // pB = w×N unblinds to the identity for A, pA = w×M for B: K would not depend on our scalar.
    const wN = Buffer.from(p256.Point.fromHex(N_HEX).multiply(w).toBytes(false));
    const wM = Buffer.from(p256.Point.fromHex(M_HEX).multiply(w).toBytes(false));
    for (const share of [offCurve, wrongPrefix, flipped, compressed, wN, Buffer.alloc(65), valid.subarray(0, 64)]) {
      expect(() => spake2Finish(a, share), hex(share)).toThrow(expect.objectContaining({ code: 'ERR_MALFORMED_PAYLOAD' }));
    }
    expect(() => spake2Finish(b, wM)).toThrow(expect.objectContaining({ code: 'ERR_MALFORMED_PAYLOAD' }));
    expect(() => spake2Finish(a, valid)).not.toThrow();
  });

  test('scalars outside [1, n) are refused', () => {
    expect(() => spake2Start('A', 0n)).toThrow(RangeError);
    expect(() => spake2Start('A', P256_ORDER)).toThrow(RangeError);
    expect(() => spake2Start('A', w, 0n)).toThrow(RangeError);
  });

  test('passwordScalar is scrypt(normalized code, "ferry spake2 v1", N=2^14, r=8, p=1, 48 bytes) mod n', async () => {
    const code = '7-orbit-velvet-cactus';
    const expected =
      BigInt(`0x${scryptSync(code, 'ferry spake2 v1', 48, { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }).toString('hex')}`) % P256_ORDER;
    expect(SCRYPT).toMatchObject({ N: 16384, r: 8, p: 1, bytes: 48 });
    const w1 = await passwordScalar(code);
    expect(w1).toBe(expected);
    expect(await passwordScalar('  7 Orbit_VELVET cactus ')).toBe(w1);
    expect(await passwordScalar('8-orbit-velvet-cactus')).not.toBe(w1);
    expect(w1 > 0n && w1 < P256_ORDER).toBe(true);
    await expect(passwordScalar('not a code')).rejects.toMatchObject({ code: 'ERR_USAGE' });
  });

  test('the TLS PSK is HKDF-SHA256(Ke, empty salt, "ferry tls psk v1"), 32 bytes', () => {
    const Ke = Buffer.from(RFC9382_VECTORS[0]!.Ke, 'hex');
    const psk = tlsPsk(Ke);
    expect(psk).toHaveLength(32);
    expect(hex(psk)).toBe(hex(Buffer.from(hkdfSync('sha256', Ke, Buffer.alloc(0), 'ferry tls psk v1', 32))));
    expect(hex(psk)).not.toBe(hex(tlsPsk(Buffer.from(RFC9382_VECTORS[1]!.Ke, 'hex'))));
  });
});

describe('word list', () => {
  test('256 distinct lowercase words of 4 to 7 letters, sorted, none a prefix of another', () => {
    expect(WORDS).toHaveLength(256);
    expect(new Set(WORDS).size).toBe(256);
    expect([...WORDS].sort()).toEqual(WORDS);
    for (const word of WORDS) expect(word).toMatch(/^[a-z]{4,7}$/);
    const sorted = [...WORDS].sort();
    // In sorted order a prefix sits right before some word it starts: checking neighbours is enough.
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.startsWith(sorted[i - 1]!), sorted[i]).toBe(false);
  });
});

describe('codes', () => {
  test('entropy is log2(999) + 24 bits', () => {
    expect(CODE_ENTROPY_BITS).toBeCloseTo(Math.log2(999) + 24, 10);
    expect(CODE_ENTROPY_BITS).toBeCloseTo(33.96, 2);
  });

  test('generated codes have the documented shape and are already normalized', () => {
    for (let i = 0; i < 500; i++) {
      const code = generateCode();
      expect(code).toMatch(/^[1-9][0-9]{0,2}(-[a-z]{4,7}){3}$/);
      expect(normalizeCode(code)).toBe(code);
    }
  });

  test('numbers and words are spread over their whole range', () => {
    const numbers = new Set<number>();
    const words = [new Set<string>(), new Set<string>(), new Set<string>()];
    let high = 0;
    for (let i = 0; i < 4000; i++) {
      const [n, ...rest] = generateCode().split('-');
      const value = Number(n);
      numbers.add(value);
      if (value > 900) high++;
      rest.forEach((word, at) => words[at]!.add(word));
    }
    // 4000 draws from 999: about 982 distinct expected, and about 10% above 900.
    expect(numbers.size).toBeGreaterThan(900);
    expect(Math.min(...numbers)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...numbers)).toBeLessThanOrEqual(999);
    expect(high).toBeGreaterThan(250);
    expect(high).toBeLessThan(560);
    // 4000 draws from 256 words: every word is all but certain to show up in each position.
    for (const seen of words) expect(seen.size).toBeGreaterThan(250);
  });

  test('a thousand codes, no repeats', () => {
    const codes = new Set(Array.from({ length: 1000 }, generateCode));
    expect(codes.size).toBe(1000);
  });

  test.each([
    ['7-orbit-velvet-cactus', '7-orbit-velvet-cactus'],
    ['  7 Orbit_velvet--CACTUS\n', '7-orbit-velvet-cactus'],
    ['999_zebra_zipper_acorn', '999-zebra-zipper-acorn'],
    ['4821-zebra-zipper-acorn', '4821-zebra-zipper-acorn'],
    ['12 - apple -  banana\tcherry', '12-apple-banana-cherry'],
  ])('normalizes %j', (input, expected) => {
    expect(normalizeCode(input)).toBe(expected);
  });

  test.each([
    '',
    '7',
    '0-orbit-velvet-cactus',
    '07-orbit-velvet-cactus',
    '10000-orbit-velvet-cactus',
    '-7-orbit-velvet-cactus',
    '7-orbit-velvet-cactus-',
    '7-orbit-velvet',
    '7-orbit-velvet-cactus-apple',
    '7-orbit-velvet-cactos',
    'orbit-7-velvet-cactus',
    '7.orbit.velvet.cactus',
    '٧-orbit-velvet-cactus',
    '7-orbít-velvet-cactus',
  ])('refuses %j with ERR_USAGE', (input) => {
    let error: unknown;
    try {
      normalizeCode(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FerryError);
    expect(error).toMatchObject({ code: 'ERR_USAGE', message: 'code must look like 7-orbit-velvet-cactus' });
  });
});

describe('CodeGuard rate limit (injected clock)', () => {
  const code = '7-orbit-velvet-cactus';

  function clock(): { now: () => number; advance(ms: number): void } {
    let t = 1000;
    return { now: () => t, advance: (ms) => void (t += ms) };
  }

  test('the code is normalized; a malformed one is a usage error', () => {
    expect(new CodeGuard(' 7 Orbit velvet cactus').code).toBe(code);
    expect(() => new CodeGuard('7-orbit')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });

  test('five failures empty the bucket; a token comes back every 6 s', () => {
    const c = clock();
    const guard = new CodeGuard(code, { now: c.now });
    for (let i = 0; i < 5; i++) guard.begin()!.settle(true);
    expect(guard.failures).toBe(5);
    expect(guard.begin()).toBeNull();
    expect(guard.retryAfterMs()).toBe(6000);
    c.advance(5999);
    expect(guard.begin()).toBeNull();
    expect(guard.retryAfterMs()).toBe(1);
    c.advance(1);
    expect(guard.retryAfterMs()).toBe(0);
    guard.begin()!.settle(true);
    expect(guard.begin()).toBeNull();
    // Sustained: 10 a minute.
    let allowed = 0;
    for (let s = 0; s < 60; s++) {
      c.advance(1000);
      const attempt = guard.begin();
      if (attempt) {
        allowed++;
        attempt.settle(true);
      }
    }
    expect(allowed).toBe(10);
  });

  test('successes and attempts that never reached pB give their token back', () => {
    const guard = new CodeGuard(code, { now: clock().now, burst: 2 });
    for (let i = 0; i < 20; i++) guard.begin()!.settle(false);
    expect(guard.failures).toBe(0);
    expect(guard.retryAfterMs()).toBe(0);
  });

  test('tokens are taken up front: parallel attempts cannot exceed the burst', () => {
    const guard = new CodeGuard(code, { now: clock().now, burst: 3 });
    const inFlight = [guard.begin(), guard.begin(), guard.begin()];
    expect(inFlight.every((a) => a !== null)).toBe(true);
    expect(guard.begin()).toBeNull();
    inFlight[0]!.settle(false);
    inFlight[0]!.settle(true); // settling twice changes nothing
    expect(guard.failures).toBe(0);
    expect(guard.begin()).not.toBeNull();
  });

  test('the bucket never holds more than the burst', () => {
    const c = clock();
    const guard = new CodeGuard(code, { now: c.now, burst: 2, refillMs: 10 });
    c.advance(1_000_000);
    expect([guard.begin(), guard.begin(), guard.begin()].filter((a) => a !== null)).toHaveLength(2);
  });

  test('tokens go round the sources: one that keeps guessing gets its turn, a newcomer is served before it', async () => {
    vi.useFakeTimers();
    try {
      const guard = new CodeGuard(code, { burst: 1, refillMs: 1000, now: () => Date.now() });
      const first = guard.acquire('10.0.0.2');
      (await first.attempt)!.settle(true);
      // The stranger queues two more; a third from the same source is refused at once.
      const strangerA = guard.acquire('10.0.0.2');
      const strangerB = guard.acquire('10.0.0.2');
      expect(await guard.acquire('10.0.0.2').attempt).toBeNull();
      const holder = guard.acquire('10.0.0.1');
      const got: string[] = [];
      void strangerA.attempt.then((a) => (got.push('stranger'), a!.settle(true)));
      void strangerB.attempt.then((a) => (got.push('stranger'), a!.settle(true)));
      void holder.attempt.then((a) => (got.push('holder'), a!.settle(false)));
      await vi.advanceTimersByTimeAsync(1000);
      // The code holder's source was never served: the first refill is its own.
      // It succeeds and gives the token back, which goes to the stranger's next wait.
      expect(got).toEqual(['holder', 'stranger']);
      await vi.advanceTimersByTimeAsync(1000);
      expect(got).toEqual(['holder', 'stranger', 'stranger']);
      expect(guard.failures).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  test('while tokens are held by handshakes in flight, one source may queue more than 2: 12 honest handshakes started at once all get a token', async () => {
    const guard = new CodeGuard(code, { burst: 5 });
    const tickets = Array.from({ length: 12 }, () => guard.acquire('10.0.0.1'));
    let served = 0;
    await within(
      Promise.all(
        tickets.map(async (t) => {
          const attempt = await t.attempt;
          expect(attempt).not.toBeNull();
          served++;
          // Each succeeds a moment later and gives its token back.
          await new Promise((resolve) => setImmediate(resolve));
          attempt!.settle(false);
        }),
      ),
      5000,
    );
    expect(served).toBe(12);
    expect(guard.failures).toBe(0);
  });

  test('the round-robin alternates between sources that both keep guessing', async () => {
    vi.useFakeTimers();
    try {
      const guard = new CodeGuard(code, { burst: 1, refillMs: 1000, now: () => Date.now() });
      (await guard.acquire('a').attempt)!.settle(true);
      const order: string[] = [];
      const lane = (source: string): void => {
        const ticket = guard.acquire(source);
        void ticket.attempt.then((a) => {
          order.push(source);
          a!.settle(true);
          if (order.length < 6) lane(source);
        });
      };
      lane('a');
      lane('b');
      for (let i = 0; i < 6; i++) await vi.advanceTimersByTimeAsync(1000);
      expect(order).toEqual(['b', 'a', 'b', 'a', 'b', 'a']);
    } finally {
      vi.useRealTimers();
    }
  });

  test('a cancelled wait leaves the queue; a token that arrives after cancel() is given back', async () => {
    vi.useFakeTimers();
    try {
      const guard = new CodeGuard(code, { burst: 1, refillMs: 1000, now: () => Date.now() });
      const held = (await guard.acquire('a').attempt)!;
      const gone = guard.acquire('b');
      gone.cancel();
      const next = guard.acquire('c');
      held.settle(false);
      // c, not the cancelled b, gets the token that came back.
      const token = await next.attempt;
      expect(token).not.toBeNull();
      next.cancel();
      expect(guard.retryAfterMs()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  test('a refused share is charged: a failure, and a free token spent, but never one a waiting handshake needs', async () => {
    const c = clock();
    const guard = new CodeGuard(code, { now: c.now, burst: 2 });
    guard.charge();
    expect(guard.failures).toBe(1);
    expect(guard.begin()).not.toBeNull();
    expect(guard.begin()).toBeNull();
    const waiting = guard.acquire('a');
    guard.charge();
    expect(guard.failures).toBe(2);
    c.advance(6000);
    waiting.cancel();
  });

  test('sources: IPv4 addresses, IPv4-mapped as IPv4, IPv6 by /64', () => {
    expect(sourceKey('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2::99')).toBe(sourceKey('2001:0db8:0001:0002:ffff::1'));
    expect(sourceKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceKey('::1')).toBe('0:0:0:0::/64');
    expect(sourceKey(undefined)).toBe('unknown');
  });

  test('the password scalar is computed once', async () => {
    const guard = new CodeGuard(code);
    const first = guard.scalar();
    expect(guard.scalar()).toBe(first);
    expect(await first).toBe(await passwordScalar(code));
  });
});
