/**
 * SPAKE2 (RFC 9382), ciphersuite SPAKE2-P256-SHA256-HKDF-HMAC, as pure
 * functions: shares in, keys out, no sockets. node:crypto does the hashing,
 * HKDF, HMAC and scrypt; @noble/curves does the P-256 arithmetic.
 *
 * Party A is the sender, party B the receiver (docs/security.md).
 */
import { createECDH, createHash, createHmac, hkdfSync, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { FerryError } from '../protocol/errors.js';
import { normalizeCode } from './code.js';

const Point = p256.Point;
/** A P-256 point (@noble/curves). */
export type CurvePoint = InstanceType<typeof Point>;
type Point = CurvePoint;

/** n, the order of the P-256 group (cofactor 1: every valid point is in the prime-order group). */
export const P256_ORDER: bigint = Point.Fn.ORDER;

/**
 * RFC 9382: the fixed points M and N for P-256 (SEC1 compressed).
 * They were derived by hashing public seeds to the curve, so nobody knows
 * their discrete logarithms; that is what SPAKE2's security rests on.
 */
export const M_HEX = '02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f';
export const N_HEX = '03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49';
const M = Point.fromHex(M_HEX);
const N = Point.fromHex(N_HEX);

/** A share is a SEC1 uncompressed point: 0x04, then x and y, 32 bytes each (the PAKE frame payload). */
export const SHARE_BYTES = 65;
/** w and the scalars travel in the transcript as 32-byte big-endian integers. */
const SCALAR_BYTES = 32;
/** Ke, Ka, KcA and KcB: half of a SHA-256 output each. */
export const KEY_BYTES = 16;
/** cA and cB: HMAC-SHA256 tags (the CONFIRM frame payload). */
export const TAG_BYTES = 32;

/** ferry's SPAKE2 parameters (docs/security.md). Both identities are always present in the transcript. */
export const FERRY_SPAKE2 = Object.freeze({
  idA: Buffer.from('ferry sender'),
  idB: Buffer.from('ferry receiver'),
  aad: Buffer.from('ferry v1'),
});

/** Identities and associated data, as bytes. */
export interface Spake2Context {
  idA: Uint8Array;
  idB: Uint8Array;
  aad: Uint8Array;
}

export type Role = 'A' | 'B';

/** One side's state between sending its share and receiving the peer's. */
export interface Spake2State {
  readonly role: Role;
  readonly w: bigint;
  /** x for A, y for B. */
  readonly scalar: bigint;
  /** pA = x×P + w×M for A, pB = y×P + w×N for B. */
  readonly share: Buffer;
}

/** Everything derived once both shares are known (RFC 9382, sections 3.3 and 4). */
export interface Spake2Keys {
  /** The shared group element, SEC1 uncompressed. */
  K: Buffer;
  /** TT = len(A)||A||len(B)||B||len(pA)||pA||len(pB)||pB||len(K)||K||len(w)||w. */
  transcript: Buffer;
  /** Ke || Ka = SHA-256(TT). Ke is the session secret; Ka only feeds confirmation. */
  Ke: Buffer;
  Ka: Buffer;
  /** KcA || KcB = HKDF-SHA256(salt = empty, ikm = Ka, info = "ConfirmationKeys" || AAD, 32 bytes). */
  KcA: Buffer;
  KcB: Buffer;
  /** cA = HMAC-SHA256(KcA, TT): sent by A. */
  cA: Buffer;
  /** cB = HMAC-SHA256(KcB, TT): sent by B. */
  cB: Buffer;
}

/**
 * scrypt parameters for the password scalar; docs/security.md gives the
 * measured cost. N = 2^14 (16 MiB, about 50 ms here) rather than 2^15: w
 * never travels and no transcript allows an offline test, so the memory-hard
 * hash only guards a w leaked from memory, and it sits on every transfer's
 * fixed cost, on both sides.
 */
export const SCRYPT = Object.freeze({
  salt: 'ferry spake2 v1',
  N: 2 ** 14,
  r: 8,
  p: 1,
  /**
   * 48 bytes = 384 bits reduced mod a 256-bit n: the result is within
   * 2^-128 of uniform (NIST SP 800-56A's "64 extra bits" rule, doubled).
   */
  bytes: 48,
  /** scrypt needs 128·N·r bytes = 16 MiB; the cap leaves room (node's default is 32 MiB, tight at N = 2^15). */
  maxmem: 64 * 1024 * 1024,
});

/**
 * w for a code: scrypt(normalized code) as a big-endian integer mod n. The
 * memory-hard hash only matters if w itself leaks (it cannot be learnt from
 * the wire); it costs about 0.1 s once per run.
 */
export async function passwordScalar(code: string): Promise<bigint> {
  const password = normalizeCode(code);
  return new Promise((resolve, reject) => {
    scrypt(password, SCRYPT.salt, SCRYPT.bytes, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: SCRYPT.maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(toBigInt(key) % P256_ORDER);
    });
  });
}

/** A scalar uniform in [1, n): 384 random bits reduced, like w. */
export function randomScalar(): bigint {
  return (toBigInt(randomBytes(48)) % (P256_ORDER - 1n)) + 1n;
}

/**
 * Starts one side: picks x (or y) unless one is given (tests inject the RFC's),
 * and computes the share to send.
 */
export function spake2Start(role: Role, w: bigint, scalar: bigint = randomScalar()): Spake2State {
  checkScalar(w, 'w');
  checkScalar(scalar, role === 'A' ? 'x' : 'y');
  const share = baseMultiply(scalar).add(blindTerm(role === 'A' ? M : N, w));
  return { role, w, scalar, share: Buffer.from(share.toBytes(false)) };
}

/**
 * scalar×P (P the generator) by node:crypto, that is OpenSSL's
 * constant-time fixed-base multiplication: about 0.1 ms, where
 * @noble/curves' first Point.BASE.multiply builds its window table first
 * (about 70 ms of a 1-byte transfer's fixed cost, measured here).
 */
function baseMultiply(scalar: bigint): Point {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalarBytes(scalar));
  return Point.fromBytes(ecdh.getPublicKey());
}

/**
 * w×M and w×N, kept for the last few w of this process (those of its codes):
 * each is the same for every handshake with that code, so the receiver
 * computes both before any sender connects and a sender while it dials
 * (warmBlinds), not while the peer waits.
 */
const blinds = new Map<string, Point>();
function blindTerm(point: Point, w: bigint): Point {
  const key = `${point === M ? 'M' : 'N'}${w.toString(16)}`;
  let term = blinds.get(key);
  if (!term) {
    if (blinds.size >= 8) blinds.clear();
    term = point.multiply(w);
    blinds.set(key, term);
  }
  return term;
}

/** Computes w×M and w×N ahead (see blindTerm). */
export function warmBlinds(w: bigint): void {
  checkScalar(w, 'w');
  blindTerm(M, w);
  blindTerm(N, w);
}

/**
 * What the peer's share is checked against: its blinding term (w·M when we
 * are B, w·N when we are A). One scalar multiplication, done once per code,
 * so that refusing a hostile share costs a decode and a comparison only.
 */
export interface ShareCheck {
  readonly role: Role;
  readonly w: bigint;
  readonly blind: CurvePoint;
}

/** The share check for our `role` and password scalar `w`. */
export function shareCheck(role: Role, w: bigint): ShareCheck {
  // Our own blinding term too: the share we send next needs it.
  warmBlinds(w);
  return { role, w, blind: blindTerm(role === 'A' ? N : M, w) };
}

/**
 * The peer's share as a point, refused (ERR_MALFORMED_PAYLOAD) unless it is
 * an uncompressed point on P-256 whose unblinded value is not the identity
 * (RFC 9382, section 7: such a share would make K independent of our secret).
 * share - blind is the identity exactly when share = blind: a comparison.
 */
export function checkShare(check: ShareCheck, peerShare: Uint8Array): CurvePoint {
  const peer = decodeShare(peerShare);
  if (peer.equals(check.blind)) throw new FerryError('ERR_MALFORMED_PAYLOAD', 'malformed PAKE frame: the share unblinds to the identity');
  return peer;
}

/**
 * Finishes one side with the peer's share: K, the transcript and the whole
 * key schedule. Throws ERR_MALFORMED_PAYLOAD for a share checkShare()
 * refuses. `check` (from shareCheck(), same role and w) saves recomputing
 * the blinding term.
 */
export function spake2Finish(
  state: Spake2State,
  peerShare: Uint8Array,
  context: Spake2Context = FERRY_SPAKE2,
  check: ShareCheck = shareCheck(state.role, state.w),
): Spake2Keys {
  if (check.role !== state.role || check.w !== state.w) throw new RangeError('the share check is for another role or password');
  const unblinded = checkShare(check, peerShare).subtract(check.blind);
  const K = Buffer.from(unblinded.multiply(state.scalar).toBytes(false));
  const [pA, pB] = state.role === 'A' ? [state.share, Buffer.from(peerShare)] : [Buffer.from(peerShare), state.share];
  const transcript = buildTranscript(context.idA, context.idB, pA, pB, K, state.w);
  return { K, transcript, ...keySchedule(transcript, context.aad) };
}

/** The RFC's transcript TT: each field preceded by its length as 8 bytes little-endian. */
export function buildTranscript(
  idA: Uint8Array,
  idB: Uint8Array,
  pA: Uint8Array,
  pB: Uint8Array,
  K: Uint8Array,
  w: bigint,
): Buffer {
  const fields = [idA, idB, pA, pB, K, scalarBytes(w)];
  const parts: Uint8Array[] = [];
  for (const field of fields) {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(field.length));
    parts.push(length, field);
  }
  return Buffer.concat(parts);
}

/** Ke, Ka, KcA, KcB, cA and cB from TT and AAD (RFC 9382, section 4). */
export function keySchedule(transcript: Uint8Array, aad: Uint8Array): Omit<Spake2Keys, 'K' | 'transcript'> {
  const hash = createHash('sha256').update(transcript).digest();
  const Ke = hash.subarray(0, KEY_BYTES);
  const Ka = hash.subarray(KEY_BYTES);
  const info = Buffer.concat([Buffer.from('ConfirmationKeys'), aad]);
  const kc = Buffer.from(hkdfSync('sha256', Ka, Buffer.alloc(0), info, 2 * KEY_BYTES));
  const KcA = kc.subarray(0, KEY_BYTES);
  const KcB = kc.subarray(KEY_BYTES);
  const cA = createHmac('sha256', KcA).update(transcript).digest();
  const cB = createHmac('sha256', KcB).update(transcript).digest();
  return { Ke, Ka, KcA, KcB, cA, cB };
}

/** Constant-time comparison of a received tag with the expected one. */
export function tagsEqual(received: Uint8Array, expected: Uint8Array): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}

function decodeShare(bytes: Uint8Array): Point {
  // The frame already holds exactly 65 bytes; the prefix check keeps compressed
  // or hybrid encodings out, and fromBytes checks that the point is on the curve.
  if (bytes.length !== SHARE_BYTES || bytes[0] !== 0x04) {
    throw new FerryError('ERR_MALFORMED_PAYLOAD', 'malformed PAKE frame: not an uncompressed P-256 point');
  }
  try {
    return Point.fromBytes(bytes);
  } catch {
    throw new FerryError('ERR_MALFORMED_PAYLOAD', 'malformed PAKE frame: not a point on P-256');
  }
}

function checkScalar(value: bigint, name: string): void {
  if (value <= 0n || value >= P256_ORDER) throw new RangeError(`${name} must be in [1, n)`);
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
}

function scalarBytes(value: bigint): Buffer {
  return Buffer.from(value.toString(16).padStart(2 * SCALAR_BYTES, '0'), 'hex');
}
