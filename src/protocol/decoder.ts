/**
 * Incremental frame decoder: fed arbitrary chunks (TCP splits and coalesces),
 * it checks each header field as soon as its bytes arrive, hands control
 * frames over parsed, and streams DATA payloads out as views of the input
 * without assembling them. No sockets, no timers: tests drive it with bytes.
 */
import {
  END_MARKER,
  FRAME_NAMES,
  FrameType,
  HEADER_SIZE,
  PAYLOAD_LIMITS,
  PROTOCOL_VERSION,
  START_MARKER,
} from './constants.js';
import { FerryError, type ErrorCode } from './errors.js';
import { parseControl, type ControlFrame } from './messages.js';

export interface DecoderHandlers {
  /** A complete, parsed control frame (end marker checked). */
  onFrame(frame: ControlFrame): void;
  /**
   * A piece of a DATA payload, in order. It is a view of a chunk given to
   * push(): it stays valid for as long as the caller does not reuse that chunk.
   * `frameEnd` is true on the last piece of a frame's payload (its end marker
   * has not been checked yet: the frame is only whole when the next call or
   * frame arrives without an error).
   */
  onData(piece: Buffer, frameEnd: boolean): void;
  /**
   * A whole ZDATA payload, end marker checked, still compressed (what it
   * decodes to, and whether it may come now, is the caller's business).
   * Absent: ZDATA is ERR_UNEXPECTED_FRAME.
   */
  onCompressed?(payload: Buffer): void;
  /**
   * Asked when a ZDATA header is whole, before a byte of its payload is
   * held: false makes it ERR_UNEXPECTED_FRAME at once, so a frame that may
   * not come now (before the handshake, outside a file) costs no memory.
   */
  compressedAllowed?(): boolean;
}

const enum State {
  Header,
  Payload,
  Data,
  Trailer,
  Failed,
}

export class FrameDecoder {
  private readonly handlers: DecoderHandlers;
  private state = State.Header;
  /** Unconsumed input: chunks in order, the first one read from `offset`. */
  private chunks: Buffer[] = [];
  private offset = 0;
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerLength = 0;
  private type = 0;
  private length = 0;
  /** Bytes of the current payload still to come. */
  private remaining = 0;
  /** A control payload that spans chunks is copied here. */
  private payload: Buffer | null = null;
  private payloadFilled = 0;
  /** A ZDATA payload that spans chunks, copied piece by piece. */
  private zparts: Buffer[] = [];
  private paused = false;
  private running = false;
  private failure: FerryError | null = null;
  /** Total bytes consumed, for error messages and fault tests. */
  private consumed = 0;

  constructor(handlers: DecoderHandlers) {
    this.handlers = handlers;
  }

  /** Bytes received but not yet decoded (held while paused). */
  get buffered(): number {
    let total = -this.offset;
    for (const chunk of this.chunks) total += chunk.length;
    return total;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * True while a frame other than DATA has begun arriving and is not whole
   * yet (a header counts until its type is known). A peer must finish such a
   * frame within its timeout: dripping it byte by byte keeps no deadline off.
   */
  get inControlFrame(): boolean {
    if (this.state === State.Header) return this.headerLength > 0;
    // ZDATA is file content like DATA: it only has to keep moving, though it is buffered whole.
    if (this.type === FrameType.ZData) return false;
    if (this.state === State.Payload) return true;
    return this.state === State.Trailer && this.type !== FrameType.Data;
  }

  /** True between frames: nothing partial is pending. */
  get atFrameBoundary(): boolean {
    return this.state === State.Header && this.headerLength === 0 && this.buffered === 0;
  }

  /** Feeds bytes. Throws a FerryError on the first violation; after that, every call throws it again. */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.run();
  }

  /** Stops delivering after the current handler returns; input keeps being buffered. */
  pause(): void {
    this.paused = true;
  }

  /** Delivers what was buffered while paused. May throw like push(). */
  resume(): void {
    if (this.failure) throw this.failure;
    this.paused = false;
    this.run();
  }

  /** The input has ended: an error if it ended inside a frame. */
  end(): void {
    if (this.failure) throw this.failure;
    if (!this.atFrameBoundary) {
      this.fail('ERR_TRUNCATED', `connection ended inside a frame (after ${this.consumed + this.buffered} bytes)`);
    }
  }

  private fail(code: ErrorCode, message: string): never {
    this.failure = new FerryError(code, message);
    this.state = State.Failed;
    this.chunks = [];
    this.payload = null;
    this.zparts = [];
    throw this.failure;
  }

  private run(): void {
    // A handler may call push() or resume(); the outer loop carries on.
    if (this.running) return;
    this.running = true;
    try {
      while (!this.paused && this.state !== State.Failed && this.chunks.length > 0) {
        this.step();
      }
    } catch (err) {
      if (this.state !== State.Failed) {
        // A parse error or a handler's error: the stream is no longer trusted.
        this.failure = err instanceof FerryError ? err : new FerryError('ERR_TRANSFER', String(err));
        this.state = State.Failed;
        this.chunks = [];
      }
      throw err;
    } finally {
      this.running = false;
    }
  }

  /** Makes progress on the first chunk; drops it once fully consumed. */
  private step(): void {
    const chunk = this.chunks[0]!;
    switch (this.state) {
      case State.Header:
        this.readHeaderByte(chunk[this.offset]!);
        this.advance(1);
        return;
      case State.Payload: {
        const n = Math.min(this.remaining, chunk.length - this.offset);
        if (this.type === FrameType.ZData && n < this.length) {
          // Up to 8 MiB: held as it arrives, not allocated on the word of a header, so a claimed length costs nothing until sent.
          this.zparts.push(Buffer.from(chunk.subarray(this.offset, this.offset + n)));
          this.remaining -= n;
          this.advance(n);
          if (this.remaining === 0) {
            this.payload = Buffer.concat(this.zparts);
            this.zparts = [];
            this.state = State.Trailer;
          }
          return;
        }
        if (this.payload === null && n === this.remaining) {
          // Whole payload inside this chunk: keep a view, no copy.
          this.payload = chunk.subarray(this.offset, this.offset + n);
          this.payloadFilled = n;
        } else {
          this.payload ??= Buffer.allocUnsafe(this.length);
          chunk.copy(this.payload, this.payloadFilled, this.offset, this.offset + n);
          this.payloadFilled += n;
        }
        this.remaining -= n;
        this.advance(n);
        if (this.remaining === 0) this.state = State.Trailer;
        return;
      }
      case State.Data: {
        const n = Math.min(this.remaining, chunk.length - this.offset);
        const piece = chunk.subarray(this.offset, this.offset + n);
        this.remaining -= n;
        this.advance(n);
        if (this.remaining === 0) this.state = State.Trailer;
        this.handlers.onData(piece, this.remaining === 0);
        return;
      }
      case State.Trailer: {
        const marker = chunk[this.offset]!;
        if (marker !== END_MARKER) {
          this.fail('ERR_BAD_END_MARKER', `bad end marker 0x${hex(marker)} after ${this.frameName()} frame`);
        }
        this.advance(1);
        this.state = State.Header;
        this.headerLength = 0;
        if (this.type !== FrameType.Data) {
          const payload = this.payload ?? Buffer.alloc(0);
          this.payload = null;
          this.payloadFilled = 0;
          if (this.type !== FrameType.ZData) this.handlers.onFrame(parseControl(this.type, payload));
          else this.handlers.onCompressed!(payload);
        }
        return;
      }
      case State.Failed:
        return;
    }
  }

  private advance(n: number): void {
    this.offset += n;
    this.consumed += n;
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Validates each header field the moment its last byte arrives. */
  private readHeaderByte(byte: number): void {
    const at = this.headerLength;
    this.header[at] = byte;
    this.headerLength = at + 1;
    if (at === 0 && byte !== START_MARKER) {
      this.fail('ERR_BAD_MAGIC', `bad start marker 0x${hex(byte)} at byte ${this.consumed} (not a ferry peer?)`);
    }
    if (at === 1 && byte !== PROTOCOL_VERSION) {
      this.fail('ERR_UNSUPPORTED_VERSION', `peer speaks protocol version ${byte}, this ferry speaks ${PROTOCOL_VERSION}`);
    }
    if (at === 3) {
      this.type = this.header.readUInt16BE(2);
      if (!PAYLOAD_LIMITS.has(this.type)) {
        this.fail('ERR_UNKNOWN_FRAME_TYPE', `unknown frame type 0x${this.type.toString(16).padStart(4, '0')}`);
      }
    }
    if (at === HEADER_SIZE - 1) {
      this.length = this.header.readUInt32BE(4);
      const [min, max] = PAYLOAD_LIMITS.get(this.type)!;
      if (this.length < min) {
        this.fail('ERR_FRAME_TOO_SMALL', `${this.frameName()} frame of ${this.length} bytes, at least ${min} expected`);
      }
      if (this.length > max) {
        this.fail('ERR_FRAME_TOO_LARGE', `${this.frameName()} frame of ${this.length} bytes, at most ${max} allowed`);
      }
      if (this.type === FrameType.ZData && !(this.handlers.onCompressed && (this.handlers.compressedAllowed?.() ?? true))) {
        this.fail('ERR_UNEXPECTED_FRAME', 'unexpected ZDATA frame (outside a file, or compression not offered in HELLO)');
      }
      this.remaining = this.length;
      this.state = this.length === 0 ? State.Trailer : this.type === FrameType.Data ? State.Data : State.Payload;
    }
  }

  private frameName(): string {
    return FRAME_NAMES.get(this.type) ?? 'unknown';
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
