/** Wire constants of protocol version 1. docs/protocol.md is the reference. */

/** First byte of every frame. */
export const START_MARKER = 0xc8;
/** Last byte of every frame, right after the payload. */
export const END_MARKER = 0xc9;
/** The only version this implementation speaks; byte 1 of every frame. */
export const PROTOCOL_VERSION = 1;

/**
 * Header: start marker (1), version (1), type (2), length (4). The length
 * counts the payload only, not these 8 bytes nor the 1-byte end marker.
 */
export const HEADER_SIZE = 8;
export const TRAILER_SIZE = 1;
export const FRAME_OVERHEAD = HEADER_SIZE + TRAILER_SIZE;

/** Frame type codes (u16 at offset 2). */
export const enum FrameType {
  /** Both ways, first frame of a session: features and hash algorithms. */
  Hello = 0x0001,
  /** Sender: no more offers, close. Empty payload. */
  Bye = 0x0002,
  /** Both ways, before TLS: a SPAKE2 share (SEC1 uncompressed P-256 point, 65 bytes). docs/security.md. */
  Pake = 0x0003,
  /** Both ways, before TLS: SPAKE2 key confirmation, an HMAC-SHA256 tag (32 bytes). */
  Confirm = 0x0004,
  /** Receiver, before TLS: both codes matched; the next bytes on the wire are TLS. Empty payload. */
  Secure = 0x0005,
  /** Sender: size, mtime, mode, hash algorithm and name of the next file. */
  Offer = 0x0010,
  /** Receiver: go ahead from this byte offset; with an offset, the digest of the bytes it holds. */
  Accept = 0x0011,
  /** Receiver: not this file; status code and message. */
  Refuse = 0x0012,
  /** Sender, after an ACCEPT with an offset: where its DATA starts (that offset, or 0 to start over). */
  Resume = 0x0013,
  /** Sender: file content. */
  Data = 0x0020,
  /** Sender: all content sent; digest of the whole file, then digest of the OFFER payload. */
  End = 0x0021,
  /** Receiver: status of the file just sent, and the digest it computed. */
  Verdict = 0x0022,
  /** Receiver: heartbeat while a file is in flight; bytes received so far. */
  Heartbeat = 0x0023,
  /**
   * Sender, where DATA may go, only to a receiver whose HELLO set
   * Feature.Compressed: one chunk of file content as a complete brotli
   * stream, decoded on its own. Counts as the bytes it decodes to.
   */
  ZData = 0x0024,
  /** Either side: giving up; status code and message, then close. */
  Abort = 0x00ff,
}

/** HELLO feature bits (u32 at offset 0). Unknown bits are ignored. */
export const enum Feature {
  /** Set by a receiver that takes ZDATA. Means nothing in a sender's HELLO. */
  Compressed = 0x00000001,
}

/** Longest UTF-8 message carried by REFUSE, VERDICT and ABORT. */
export const MAX_MESSAGE_BYTES = 1024;
/** Longest name an OFFER may carry; longer paths or components are refused, not aborted. */
export const MAX_OFFER_NAME_BYTES = 4096;
/** Longest path component the receiver accepts: NAME_MAX on Linux and most file systems. */
export const MAX_NAME_BYTES = 255;
/** Longest relative path (components joined by '/') the receiver accepts: PATH_MAX less room for --dir. */
export const MAX_PATH_BYTES = 3072;
/** Deepest tree accepted: components in a relative path. */
export const MAX_PATH_DEPTH = 64;

/** OFFER flags (byte 21). Other bits must be 0. */
export const enum OfferFlag {
  /** A directory: size 0, no DATA; answered by VERDICT alone (mode and mtime are applied). */
  Directory = 0x01,
  /** Size unknown ahead (stdin): the size field is 0 and END marks the end. Never resumed. */
  Stream = 0x02,
  /**
   * DATA and END follow the OFFER at once, without waiting for ACCEPT; the
   * receiver answers with VERDICT alone (a refusal code if it declines, after
   * discarding the data). Only for files of at most MAX_EAGER_BYTES.
   */
  Eager = 0x04,
  /**
   * "Do you already have this file?": no DATA or END follow; the receiver
   * answers VERDICT OK with the digest of the file it holds at that path
   * (of the offered size and mtime), or ERR_NOT_HELD. Writes nothing. With
   * DIRECTORY, the same for all the files below a folder at once
   * (src/folder-digest.ts). Never with STREAM, EAGER or REPLACE.
   */
  Probe = 0x08,
  /**
   * The sender asks (--update) that an existing file of that name be
   * replaced, atomically and only once verified. A receiver honours it only
   * when it allows updates (--allow-update; --overwrite replaces anyway).
   * Never with DIRECTORY or PROBE.
   */
  Replace = 0x10,
}
export const KNOWN_OFFER_FLAGS = OfferFlag.Directory | OfferFlag.Stream | OfferFlag.Eager | OfferFlag.Probe | OfferFlag.Replace;
/**
 * Largest file sent eagerly. Small files then cost no round trip each; a
 * refused one wastes at most this much bandwidth.
 */
export const MAX_EAGER_BYTES = 64 * 1024;
/** Largest digest any algorithm may use (BLAKE3 and SHA-256 use 32). */
export const MAX_DIGEST_BYTES = 64;
/**
 * Largest DATA payload a peer must accept. Senders use 1 MiB; 8 MiB leaves
 * room to grow while keeping a hostile length harmless (DATA is streamed,
 * never buffered whole, so this bounds nothing in memory; it bounds lies).
 */
export const MAX_DATA_BYTES = 8 * 1024 * 1024;
/** Fixed part of an OFFER before the name. */
export const OFFER_FIXED_BYTES = 24;
/** Files are limited to what a JavaScript number holds exactly. */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** [minimum, maximum] payload length per frame type: checked on the header, before buffering. */
export const PAYLOAD_LIMITS: ReadonlyMap<number, readonly [number, number]> = new Map<number, readonly [number, number]>([
  [FrameType.Hello, [5, 5 + 255]],
  [FrameType.Bye, [0, 0]],
  [FrameType.Pake, [65, 65]],
  [FrameType.Confirm, [32, 32]],
  [FrameType.Secure, [0, 0]],
  [FrameType.Offer, [OFFER_FIXED_BYTES + 1, OFFER_FIXED_BYTES + MAX_OFFER_NAME_BYTES]],
  [FrameType.Accept, [8, 8 + MAX_DIGEST_BYTES]],
  [FrameType.Resume, [8, 8]],
  [FrameType.Refuse, [2, 2 + MAX_MESSAGE_BYTES]],
  [FrameType.Data, [1, MAX_DATA_BYTES]],
  // Buffered whole to be decoded: the same bound as DATA keeps a hostile length at 8 MiB.
  [FrameType.ZData, [1, MAX_DATA_BYTES]],
  [FrameType.End, [2, 2 * MAX_DIGEST_BYTES]],
  [FrameType.Verdict, [3, 3 + MAX_DIGEST_BYTES + MAX_MESSAGE_BYTES]],
  [FrameType.Heartbeat, [8, 8]],
  [FrameType.Abort, [2, 2 + MAX_MESSAGE_BYTES]],
]);

/** Hash algorithm ids (OFFER byte 20, HELLO list). */
export const enum HashId {
  Blake3 = 1,
  Sha256 = 2,
}

export const FRAME_NAMES: ReadonlyMap<number, string> = new Map([
  [FrameType.Hello, 'HELLO'],
  [FrameType.Bye, 'BYE'],
  [FrameType.Pake, 'PAKE'],
  [FrameType.Confirm, 'CONFIRM'],
  [FrameType.Secure, 'SECURE'],
  [FrameType.Offer, 'OFFER'],
  [FrameType.Accept, 'ACCEPT'],
  [FrameType.Refuse, 'REFUSE'],
  [FrameType.Resume, 'RESUME'],
  [FrameType.Data, 'DATA'],
  [FrameType.ZData, 'ZDATA'],
  [FrameType.End, 'END'],
  [FrameType.Verdict, 'VERDICT'],
  [FrameType.Heartbeat, 'HEARTBEAT'],
  [FrameType.Abort, 'ABORT'],
]);
