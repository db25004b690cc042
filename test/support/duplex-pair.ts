/**
 * Two connected in-memory sockets, enough like `net.Socket` for Connection
 * and the frame code (ws's test/duplex-pair.js, with flow control): what one
 * end writes arrives on the other a tick later, as a separate 'data' chunk,
 * or cut into the pieces `split` chooses. Each end is a real stream.Duplex,
 * so write(), cork(), pause(), end(), destroy() and their events behave as
 * Node's streams do; only the wire between them is ours.
 *
 * Backpressure runs end to end like TCP's window: a chunk the reader has no
 * room for (its readable buffer is full because it paused) holds the writer's
 * callback, so the writer's buffer fills, write() returns false and 'drain'
 * comes once the reader resumes.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

export interface PairOptions {
  /** Bytes each end buffers before write() returns false / a paused reader stops taking chunks. Default 16 KiB. */
  highWaterMark?: number;
  /** How a written chunk is cut on the wire (default: delivered whole). */
  split?: (chunk: Buffer) => Buffer[];
  /** The address each end sees for its peer. */
  addresses?: [{ address: string; port: number }, { address: string; port: number }];
}

export class DuplexEnd extends Duplex {
  peer!: DuplexEnd;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** setNoDelay() was called (Connection turns Nagle off). */
  noDelay = false;
  private readonly split: (chunk: Buffer) => Buffer[];
  /** The peer's write callback, held while this end's readable buffer is full. */
  private heldWrite: (() => void) | null = null;

  constructor(options: PairOptions, remote: { address: string; port: number }) {
    const hwm = options.highWaterMark ?? 16 * 1024;
    super({ readableHighWaterMark: hwm, writableHighWaterMark: hwm, allowHalfOpen: true });
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    this.split = options.split ?? ((chunk) => [chunk]);
  }

  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    return this;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const pieces = this.split(chunk);
    // A tick later, as bytes from a socket arrive: never inside the writer's own call.
    process.nextTick(() => this.peer.deliver(pieces, () => callback()));
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    // A corked burst leaves as one chunk, as it would in one system call.
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), 'binary', callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    process.nextTick(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      callback();
    });
  }

  override _read(): void {
    const held = this.heldWrite;
    this.heldWrite = null;
    held?.();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const held = this.heldWrite;
    this.heldWrite = null;
    held?.();
    // The peer sees a FIN (its 'end'), as after close() on a socket with nothing unread.
    process.nextTick(() => {
      if (!this.peer.destroyed && !this.peer.readableEnded) this.peer.push(null);
    });
    callback(error);
  }

  /** This end goes away with a reset: the other end gets `code` as an 'error', then 'close'. */
  reset(code = 'ECONNRESET'): void {
    this.destroy();
    this.peer.destroy(Object.assign(new Error(`read ${code}`), { code }));
  }

  private deliver(pieces: Buffer[], written: () => void): void {
    if (this.destroyed || this.readableEnded) {
      written();
      return;
    }
    let room = true;
    for (const piece of pieces) room = this.push(piece);
    if (room) written();
    else this.heldWrite = written;
  }
}

/** Two connected ends: `a` sees `b`'s address as its remote one, and the other way round. */
export function duplexPair(options: PairOptions = {}): [DuplexEnd, DuplexEnd] {
  const [addrA, addrB] = options.addresses ?? [
    { address: '127.0.0.1', port: 40001 },
    { address: '127.0.0.1', port: 7878 },
  ];
  const a = new DuplexEnd(options, addrB);
  const b = new DuplexEnd(options, addrA);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** An end typed as what Connection takes; it implements the part of net.Socket that Connection uses. */
export function asSocket(end: DuplexEnd): Socket {
  return end as unknown as Socket;
}

/** Cuts a chunk at the given offsets (for "every split" tests). */
export function cutAt(...offsets: number[]): (chunk: Buffer) => Buffer[] {
  return (chunk) => {
    const pieces: Buffer[] = [];
    let from = 0;
    for (const at of offsets) {
      if (at <= from || at >= chunk.length) continue;
      pieces.push(chunk.subarray(from, at));
      from = at;
    }
    pieces.push(chunk.subarray(from));
    return pieces;
  };
}
