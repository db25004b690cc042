/**
 * Where a connection's file content goes: DATA payloads as they arrive, a
 * ZDATA frame decoded whole within what the file may still take
 * (src/compress.ts). With no handler set, content is a protocol error:
 * DATA or ZDATA outside a transfer.
 */
import { decompressChunk } from './compress.js';
import { FerryError, type ErrorCode } from './protocol/errors.js';

/** Takes file content in order: DATA as it arrives, a ZDATA frame decoded whole. */
export type DataHandler = (piece: Buffer) => void;

/**
 * What the content being received may still grow by, for decoding ZDATA
 * within a bound: `room()` bytes at most, or `tooMuch` (ERR_SIZE_MISMATCH
 * for a file of known size, ERR_TOO_LARGE for a stream over --max-size).
 */
export interface DataBound {
  room(): number;
  tooMuch: ErrorCode;
}

const UNBOUNDED: DataBound = { room: () => Number.MAX_SAFE_INTEGER, tooMuch: 'ERR_TOO_LARGE' };

export class ContentRoute {
  private handler: DataHandler | null = null;
  private bound: DataBound = UNBOUNDED;
  /**
   * This side's HELLO set Feature.Compressed (the receiver): ZDATA is
   * welcome where DATA is. Otherwise a ZDATA frame is ERR_UNEXPECTED_FRAME.
   */
  acceptsCompressed = false;

  /** True while a transfer takes content: the decoder asks before it holds a ZDATA payload. */
  get takesCompressed(): boolean {
    return this.handler !== null && this.acceptsCompressed;
  }

  set(handler: DataHandler | null, bound: DataBound = UNBOUNDED): void {
    this.handler = handler;
    this.bound = bound;
  }

  data(piece: Buffer): void {
    if (!this.handler) throw new FerryError('ERR_UNEXPECTED_FRAME', 'DATA frame outside a transfer');
    this.handler(piece);
  }

  /** ZDATA: allowed where DATA is, once this side's HELLO offered it; checked before decoding, which needs the bound. */
  compressed(payload: Buffer): void {
    if (!this.handler) throw new FerryError('ERR_UNEXPECTED_FRAME', 'ZDATA frame outside a transfer');
    if (!this.acceptsCompressed) throw new FerryError('ERR_UNEXPECTED_FRAME', 'ZDATA frame, but this side did not offer compression in its HELLO');
    this.handler(decompressChunk(payload, this.bound.room(), this.bound.tooMuch));
  }
}
