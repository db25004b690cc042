/**
 * Frame payloads: pure functions from typed messages to bytes and back
 * (docs/protocol.md, section 5). No sockets, no files, no timers.
 */
import {
  END_MARKER,
  FRAME_OVERHEAD,
  FrameType,
  HEADER_SIZE,
  MAX_DIGEST_BYTES,
  MAX_FILE_SIZE,
  MAX_MESSAGE_BYTES,
  KNOWN_OFFER_FLAGS,
  MAX_EAGER_BYTES,
  MAX_OFFER_NAME_BYTES,
  OFFER_FIXED_BYTES,
  OfferFlag,
  PAYLOAD_LIMITS,
  PROTOCOL_VERSION,
  START_MARKER,
} from './constants.js';
import { FerryError, codeOfWireStatus, wireStatusOf, type ErrorCode } from './errors.js';

export interface HelloFrame {
  type: FrameType.Hello;
  /** Feature bits; version 1 defines none. */
  features: number;
  /** Hash algorithm ids, most preferred first. */
  algorithms: number[];
}
export interface ByeFrame {
  type: FrameType.Bye;
}
/** Handshake frames (docs/security.md): opaque bytes whose length the header already checked. */
export interface PakeFrame {
  type: FrameType.Pake;
  share: Buffer;
}
export interface ConfirmFrame {
  type: FrameType.Confirm;
  tag: Buffer;
}
export interface SecureFrame {
  type: FrameType.Secure;
}
export interface OfferFrame {
  type: FrameType.Offer;
  size: number;
  /** Milliseconds since the epoch; may be negative. */
  mtimeMs: number;
  /** Permission bits, within 0o777. */
  mode: number;
  algorithm: number;
  /** OfferFlag bits. */
  flags: number;
  /** The relative path as sent ('/' between components): raw bytes, validated by the receiver (see names.ts). */
  name: Buffer;
  /** The whole payload as received: END carries its digest. */
  payload: Buffer;
}
export interface AcceptFrame {
  type: FrameType.Accept;
  offset: number;
  /** Digest of the receiver's first `offset` bytes, with the offer's algorithm; empty when offset is 0. */
  prefixDigest: Buffer;
}
export interface ResumeFrame {
  type: FrameType.Resume;
  offset: number;
}
export interface RefuseFrame {
  type: FrameType.Refuse;
  code: ErrorCode;
  message: string;
}
export interface EndFrame {
  type: FrameType.End;
  /** Content digest then offer digest, each half of the payload (split by the algorithm's length). */
  digests: Buffer;
}
export interface VerdictFrame {
  type: FrameType.Verdict;
  /** 'OK' when the file was verified and saved. */
  code: ErrorCode;
  digest: Buffer;
  message: string;
}
export interface HeartbeatFrame {
  type: FrameType.Heartbeat;
  /** Bytes of the current file the receiver has taken in. */
  received: number;
}
export interface AbortFrame {
  type: FrameType.Abort;
  code: ErrorCode;
  message: string;
}

/** Every frame but DATA, whose payload is streamed rather than parsed. */
export type ControlFrame =
  | HelloFrame
  | ByeFrame
  | PakeFrame
  | ConfirmFrame
  | SecureFrame
  | OfferFrame
  | AcceptFrame
  | ResumeFrame
  | RefuseFrame
  | EndFrame
  | VerdictFrame
  | HeartbeatFrame
  | AbortFrame;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(what: string): FerryError {
  return new FerryError('ERR_MALFORMED_PAYLOAD', `malformed ${what} frame`);
}

/** Strict UTF-8: invalid sequences are an error, never replaced. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(what);
  }
}

/** Truncates a message to the wire limit without splitting a UTF-8 sequence. */
function messageBytes(message: string): Buffer {
  const bytes = Buffer.from(message, 'utf8');
  if (bytes.length <= MAX_MESSAGE_BYTES) return bytes;
  let end = MAX_MESSAGE_BYTES;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Writes the 8-byte header of a frame into `target` at `offset`. */
export function writeHeader(target: Buffer, offset: number, type: FrameType, length: number): void {
  target[offset] = START_MARKER;
  target[offset + 1] = PROTOCOL_VERSION;
  target.writeUInt16BE(type, offset + 2);
  target.writeUInt32BE(length, offset + 4);
}

/**
 * Frames a DATA payload in place. `buffer` holds the payload at
 * [HEADER_SIZE, HEADER_SIZE + length) and has one spare byte after it; the
 * header and end marker are written around it, so the frame goes out in one
 * write with no copy. Returns the frame as a view of `buffer`.
 */
export function frameDataInPlace(buffer: Buffer, length: number): Buffer {
  writeHeader(buffer, 0, FrameType.Data, length);
  buffer[HEADER_SIZE + length] = END_MARKER;
  return buffer.subarray(0, HEADER_SIZE + length + 1);
}

/** A whole frame around `payload` (control frames are small: copying them is fine). */
export function encodeFrame(type: FrameType, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const limits = PAYLOAD_LIMITS.get(type);
  if (limits === undefined || payload.length < limits[0] || payload.length > limits[1]) {
    throw new RangeError(`payload of ${payload.length} bytes does not fit frame type ${type}`);
  }
  const frame = Buffer.allocUnsafe(payload.length + FRAME_OVERHEAD);
  writeHeader(frame, 0, type, payload.length);
  frame.set(payload, HEADER_SIZE);
  frame[HEADER_SIZE + payload.length] = END_MARKER;
  return frame;
}

export function encodeHello(algorithms: readonly number[], features = 0): Buffer {
  const payload = Buffer.alloc(5 + algorithms.length);
  payload.writeUInt32BE(features >>> 0, 0);
  payload[4] = algorithms.length;
  payload.set(algorithms, 5);
  return encodeFrame(FrameType.Hello, payload);
}

export function encodeBye(): Buffer {
  return encodeFrame(FrameType.Bye);
}

export function encodeOffer(offer: { size: number; mtimeMs: number; mode: number; algorithm: number; name: string | Buffer; flags?: number }): Buffer {
  const name = typeof offer.name === 'string' ? Buffer.from(offer.name, 'utf8') : offer.name;
  if (!Number.isSafeInteger(offer.size) || offer.size < 0) throw new RangeError(`bad size ${offer.size}`);
  if (name.length === 0 || name.length > MAX_OFFER_NAME_BYTES) throw new RangeError(`name of ${name.length} bytes`);
  const payload = Buffer.alloc(OFFER_FIXED_BYTES + name.length);
  payload.writeBigUInt64BE(BigInt(offer.size), 0);
  payload.writeBigInt64BE(BigInt(Math.trunc(offer.mtimeMs)), 8);
  payload.writeUInt32BE(offer.mode & 0o777, 16);
  payload[20] = offer.algorithm;
  payload[21] = offer.flags ?? 0;
  payload.writeUInt16BE(name.length, 22);
  payload.set(name, OFFER_FIXED_BYTES);
  return encodeFrame(FrameType.Offer, payload);
}

export function encodeAccept(offset = 0, prefixDigest: Uint8Array = Buffer.alloc(0)): Buffer {
  const payload = Buffer.alloc(8 + prefixDigest.length);
  payload.writeBigUInt64BE(BigInt(offset), 0);
  payload.set(prefixDigest, 8);
  return encodeFrame(FrameType.Accept, payload);
}

export function encodeResume(offset: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64BE(BigInt(offset), 0);
  return encodeFrame(FrameType.Resume, payload);
}

function encodeCoded(type: FrameType.Refuse | FrameType.Abort, code: ErrorCode, message: string): Buffer {
  const text = messageBytes(message);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(wireStatusOf(code), 0);
  payload.set(text, 2);
  return encodeFrame(type, payload);
}

export function encodeRefuse(code: ErrorCode, message: string): Buffer {
  return encodeCoded(FrameType.Refuse, code, message);
}

export function encodeAbort(code: ErrorCode, message: string): Buffer {
  return encodeCoded(FrameType.Abort, code, message);
}

/** END: the digest of the file, then the digest of the OFFER payload as sent. */
export function encodeEnd(contentDigest: Uint8Array, offerDigest: Uint8Array): Buffer {
  return encodeFrame(FrameType.End, Buffer.concat([contentDigest, offerDigest]));
}

/** The payload of an encoded frame (for hashing the OFFER as sent). */
export function payloadOf(frame: Buffer): Buffer {
  return frame.subarray(HEADER_SIZE, frame.length - 1);
}

export function encodeVerdict(code: ErrorCode, digest: Uint8Array, message = ''): Buffer {
  const text = messageBytes(message);
  const payload = Buffer.alloc(3 + digest.length + text.length);
  payload.writeUInt16BE(wireStatusOf(code), 0);
  payload[2] = digest.length;
  payload.set(digest, 3);
  payload.set(text, 3 + digest.length);
  return encodeFrame(FrameType.Verdict, payload);
}

export function encodeHeartbeat(received: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64BE(BigInt(received), 0);
  return encodeFrame(FrameType.Heartbeat, payload);
}

function parseCoded(payload: Buffer, what: string, allowOk: boolean): { code: ErrorCode; message: string } {
  const status = payload.readUInt16BE(0);
  if (status === 0 && !allowOk) throw malformed(what);
  return { code: status === 0 ? 'OK' : codeOfWireStatus(status), message: decodeUtf8(payload.subarray(2), what) };
}

function parseHello(payload: Buffer): HelloFrame {
  const count = payload[4] ?? 0;
  if (count === 0 || payload.length !== 5 + count) throw malformed('HELLO');
  return { type: FrameType.Hello, features: payload.readUInt32BE(0), algorithms: [...payload.subarray(5)] };
}

function parseOffer(payload: Buffer): OfferFrame {
  const size = payload.readBigUInt64BE(0);
  const mode = payload.readUInt32BE(16);
  const flags = payload[21] ?? 0;
  const nameLength = payload.readUInt16BE(22);
  if (
    size > BigInt(MAX_FILE_SIZE) ||
    (mode & ~0o777) !== 0 ||
    (flags & ~KNOWN_OFFER_FLAGS) !== 0 ||
    nameLength === 0 ||
    payload.length !== OFFER_FIXED_BYTES + nameLength
  ) {
    throw malformed('OFFER');
  }
  // A directory has no content; a stream has no size; only small files are eager.
  const directory = (flags & OfferFlag.Directory) !== 0;
  const stream = (flags & OfferFlag.Stream) !== 0;
  const eager = (flags & OfferFlag.Eager) !== 0;
  if ((directory && (size !== 0n || stream || eager)) || (stream && (size !== 0n || eager)) || (eager && size > BigInt(MAX_EAGER_BYTES))) {
    throw malformed('OFFER');
  }
  // A probe asks about a file that is not sent; a folder is never replaced.
  const probe = (flags & OfferFlag.Probe) !== 0;
  const replace = (flags & OfferFlag.Replace) !== 0;
  // A probe of a folder asks about all its files at once (its size is 0, as for any folder).
  if ((probe && (stream || eager || replace)) || (replace && directory)) throw malformed('OFFER');
  return {
    type: FrameType.Offer,
    size: Number(size),
    mtimeMs: Number(payload.readBigInt64BE(8)),
    mode,
    algorithm: payload[20] ?? 0,
    flags,
    name: payload.subarray(OFFER_FIXED_BYTES),
    payload,
  };
}

function parseAccept(payload: Buffer): AcceptFrame {
  const offset = payload.readBigUInt64BE(0);
  const digest = payload.subarray(8);
  if (offset > BigInt(MAX_FILE_SIZE) || (offset === 0n) !== (digest.length === 0)) throw malformed('ACCEPT');
  return { type: FrameType.Accept, offset: Number(offset), prefixDigest: digest };
}

/** An 8-byte count that must fit a JavaScript number exactly (RESUME, HEARTBEAT). */
function parseCount(payload: Buffer, what: string): number {
  const value = payload.readBigUInt64BE(0);
  if (value > BigInt(MAX_FILE_SIZE)) throw malformed(what);
  return Number(value);
}

function parseVerdict(payload: Buffer): VerdictFrame {
  const digestLength = payload[2] ?? 0;
  if (digestLength > MAX_DIGEST_BYTES || payload.length < 3 + digestLength) throw malformed('VERDICT');
  const text = payload.subarray(3 + digestLength);
  if (text.length > MAX_MESSAGE_BYTES) throw malformed('VERDICT');
  const status = payload.readUInt16BE(0);
  return {
    type: FrameType.Verdict,
    code: status === 0 ? 'OK' : codeOfWireStatus(status),
    digest: payload.subarray(3, 3 + digestLength),
    message: decodeUtf8(text, 'VERDICT'),
  };
}

/**
 * Parses the payload of a control frame whose header already passed the
 * length limits. Throws ERR_MALFORMED_PAYLOAD on anything section 5 forbids.
 */
export function parseControl(type: FrameType, payload: Buffer): ControlFrame {
  switch (type) {
    case FrameType.Hello:
      return parseHello(payload);
    case FrameType.Bye:
    case FrameType.Secure:
      return { type };
    case FrameType.Pake:
      return { type, share: payload };
    case FrameType.Confirm:
      return { type, tag: payload };
    case FrameType.Offer:
      return parseOffer(payload);
    case FrameType.Accept:
      return parseAccept(payload);
    case FrameType.Resume:
      return { type, offset: parseCount(payload, 'RESUME') };
    case FrameType.Heartbeat:
      return { type, received: parseCount(payload, 'HEARTBEAT') };
    case FrameType.Refuse:
      return { type, ...parseCoded(payload, 'REFUSE', false) };
    case FrameType.Abort:
      return { type, ...parseCoded(payload, 'ABORT', false) };
    case FrameType.End:
      if (payload.length % 2 !== 0) throw malformed('END');
      return { type, digests: payload };
    case FrameType.Verdict:
      return parseVerdict(payload);
    default:
      // The decoder only calls this for known control types.
      throw new FerryError('ERR_UNKNOWN_FRAME_TYPE', `frame type ${type as number} has no parser`);
  }
}
