/**
 * A fault-injection TCP proxy for tests.
 *
 * It sits between a client and a real server on loopback and damages the
 * client->server byte stream in precise, repeatable ways: flip one byte, cut
 * the connection after N bytes, hold bytes back for a while or forever,
 * re-slice the stream into tiny writes, or throttle it. Every offset counts
 * bytes of one connection's stream, so the same plan hits every connection at
 * the same place.
 *
 * A cut destroys the proxy's sockets after the last allowed byte is in the
 * kernel; each peer then sees EOF, or a reset if it had sent bytes the proxy
 * never read. With a peer that has stopped reading, a cut waits until those
 * last bytes can be handed over.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { clearImmediate, clearTimeout, setImmediate, setTimeout } from 'node:timers';

/** What to do to the stream. All offsets count bytes of one connection, starting at 0. */
export interface FaultPlan {
  /** XOR this mask (default 0xff) into the byte at this absolute offset of the client->server stream. */
  flipAt?: number;
  flipMask?: number;
  /** Destroy both sockets once this many client->server bytes have been forwarded (exactly N bytes reach the server, then both sides are cut). */
  cutAfter?: number;
  /** Same for the server->client direction. */
  cutAfterReverse?: number;
  /** Stop forwarding client->server for `ms` once `after` bytes have passed (bytes are held, not dropped, then released). */
  stall?: { after: number; ms: number };
  /** Stop forwarding client->server forever once `after` bytes have passed (never releases; connections stay open). */
  blackholeAfter?: number;
  /**
   * Re-slice the client->server stream: 'byte' = one write per byte, 'random' = random sizes
   * 1..maxSlice (default 16) from a seeded PRNG (deterministic given seed).
   *
   * Slice boundaries fall at the offsets the PRNG dictates; a slice is also split where the
   * proxy ran out of received data, since holding bytes back to fill a slice could deadlock a
   * request/response protocol. Each slice is written on its own event-loop turn so the
   * receiver really gets a chance to read it separately; keep sliced payloads small (KiBs).
   */
  slice?: 'byte' | { mode: 'random'; seed: number; maxSlice?: number };
  /** Throttle client->server to about this many bytes per second. */
  bytesPerSecond?: number;
  /**
   * Apply the faults to the first `onlyFirst` connections only (in accept order); later
   * connections are forwarded untouched, e.g. so a client's retry gets through. Default: all.
   */
  onlyFirst?: number;
}

/** A running proxy. Counters are live and summed over all connections. */
export interface FaultProxy {
  /** Where clients connect (127.0.0.1). */
  port: number;
  /** Bytes forwarded so far, per direction, summed over connections. */
  forwarded: { up: number; down: number };
  /** Number of socket writes the proxy made, per direction (with slice 'byte', `up` equals the bytes forwarded). */
  writes: { up: number; down: number };
  /** Every byte forwarded client->server (after any flip), if `record: true` was given; connections are concatenated in forwarding order. */
  recorded(): Buffer;
  /** Size of every client->server write, in order, if `record: true` was given. */
  recordedWrites(): number[];
  /** Bytes the proxy is holding right now: received but not yet handed to the kernel, both directions. */
  buffered(): number;
  /** Resolves when `n` connections have fully closed on both sides; rejects after `timeoutMs` (default 2000). */
  closedConnections(n: number, timeoutMs?: number): Promise<void>;
  /** Destroys every connection, clears every timer and stops listening. */
  close(): Promise<void>;
}

/** The slice sizes a `{ mode: 'random', seed, maxSlice }` plan uses, enough of them to cover `total` bytes. */
export function randomSliceSizes(seed: number, maxSlice: number, total: number): number[] {
  const next = randomSlicer(seed, maxSlice);
  const sizes: number[] = [];
  for (let covered = 0; covered < total; ) {
    const size = next();
    sizes.push(size);
    covered += size;
  }
  return sizes;
}

/** Starts a proxy on 127.0.0.1 (ephemeral port) that forwards every connection to `target`. */
export async function startProxy(
  target: { host: string; port: number },
  plan: FaultPlan = {},
  opts: { record?: boolean } = {},
): Promise<FaultProxy> {
  validate(plan);
  const forwarded = { up: 0, down: 0 };
  const writes = { up: 0, down: 0 };
  const record = opts.record === true;
  const recordedBytes: Buffer[] = [];
  const recordedSizes: number[] = [];
  const live = new Set<Connection>();
  const closedEvents = new EventEmitter();
  const waiters = new Set<Waiter>();
  let closedCount = 0;
  let accepted = 0;

  const upRules: Rules = {
    flipAt: plan.flipAt,
    flipMask: plan.flipMask ?? 0xff,
    cutAfter: plan.cutAfter,
    stall: plan.stall,
    blackholeAfter: plan.blackholeAfter,
    bytesPerSecond: plan.bytesPerSecond,
  };
  const downRules: Rules = { flipMask: 0, cutAfter: plan.cutAfterReverse };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const faulty = plan.onlyFirst === undefined || accepted < plan.onlyFirst;
    accepted += 1;
    const connection = new Connection(
      client,
      upstream,
      // A fresh slicer per connection: the plan must hit every connection identically.
      faulty ? { ...upRules, nextSlice: slicerFor(plan.slice) } : { flipMask: 0xff },
      faulty ? downRules : { flipMask: 0 },
      {
        up(piece) {
          forwarded.up += piece.length;
          writes.up += 1;
          if (record) {
            // Copy: the piece may be a view of a buffer the socket layer owns.
            recordedBytes.push(Buffer.from(piece));
            recordedSizes.push(piece.length);
          }
        },
        down(piece) {
          forwarded.down += piece.length;
          writes.down += 1;
        },
      },
    );
    live.add(connection);
    void connection.closed.then(() => {
      live.delete(connection);
      closedCount += 1;
      closedEvents.emit('closed');
    });
  });
  // A listening error after startup (there should be none) must not crash the test run.
  server.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;

  return {
    port: (server.address() as AddressInfo).port,
    forwarded,
    writes,
    recorded: () => Buffer.concat(recordedBytes),
    recordedWrites: () => [...recordedSizes],
    buffered: () => [...live].reduce((sum, c) => sum + c.buffered(), 0),

    closedConnections(n, timeoutMs = 2000) {
      if (closedCount >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          settle(error) {
            clearTimeout(timer);
            closedEvents.off('closed', check);
            waiters.delete(waiter);
            if (error === undefined) resolve();
            else reject(error);
          },
        };
        const check = (): void => {
          if (closedCount >= n) waiter.settle();
        };
        const timer = setTimeout(
          () => waiter.settle(new Error(`only ${closedCount} of ${n} connections closed within ${timeoutMs} ms`)),
          timeoutMs,
        );
        closedEvents.on('closed', check);
        waiters.add(waiter);
      });
    },

    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        const connections = [...live];
        for (const connection of connections) connection.destroy();
        await Promise.all([stopped, ...connections.map((c) => c.closed)]);
        // Waiters that closing did not satisfy would otherwise keep a timer alive.
        for (const waiter of [...waiters]) waiter.settle(new Error('proxy closed'));
      })();
      return closing;
    },
  };
}

interface Waiter {
  settle(error?: Error): void;
}

/** One direction's faults, with slicing already turned into a size source. */
interface Rules {
  flipAt?: number | undefined;
  flipMask: number;
  cutAfter?: number | undefined;
  stall?: { after: number; ms: number } | undefined;
  blackholeAfter?: number | undefined;
  nextSlice?: (() => number) | undefined;
  bytesPerSecond?: number | undefined;
}

/** A client socket, its upstream socket, and the pumps between them. */
class Connection {
  readonly closed: Promise<void>;
  private readonly up: Pump;
  private readonly down: Pump;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    upRules: Rules,
    downRules: Rules,
    onWrite: { up(piece: Buffer): void; down(piece: Buffer): void },
  ) {
    // Slicing only tests anything if small writes become small segments.
    upstream.setNoDelay(true);
    const cut = (): void => this.destroy();
    this.up = new Pump(client, upstream, upRules, onWrite.up, cut);
    this.down = new Pump(upstream, client, downRules, onWrite.down, cut);

    const closes = [this.link(client, upstream, this.down), this.link(upstream, client, this.up)];
    this.closed = Promise.all(closes).then(() => undefined);
    this.up.start();
    this.down.start();
  }

  buffered(): number {
    return this.up.buffered() + this.down.buffered();
  }

  destroy(): void {
    this.up.stop();
    this.down.stop();
    this.client.destroy();
    this.upstream.destroy();
  }

  /** Ties `socket`'s fate to `other`'s; resolves when `socket` has closed. */
  private link(socket: Socket, other: Socket, pumpInto: Pump): Promise<void> {
    // Errors are part of the game here (resets, refused upstreams); never let one go unhandled.
    socket.on('error', () => other.destroy());
    return new Promise((resolve) => {
      socket.once('close', () => {
        pumpInto.stop();
        // A clean close means `other` already sent its FIN and will finish on its own; otherwise
        // `other` could still send data with nowhere to go.
        if (!other.readableEnded) other.destroy();
        resolve();
      });
    });
  }
}

/**
 * Moves bytes from one socket to another, applying the faults. At most one received chunk
 * waits here: the source is paused whenever anything is queued or the destination pushes back,
 * so a slow reader slows the writer instead of filling memory.
 */
class Pump {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private offset = 0;
  private waiting = false;
  private awaitingDrain = false;
  private stopped = false;
  private sourceEnded = false;
  private endSent = false;
  private stallUsed = false;
  private sliceLeft = 0;
  private budget = 0;
  private lastRefill = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;

  constructor(
    private readonly source: Socket,
    private readonly dest: Socket,
    private readonly rules: Rules,
    private readonly onWrite: (piece: Buffer) => void,
    private readonly onCut: () => void,
  ) {
    source.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      this.queue.push(chunk);
      this.queued += chunk.length;
      this.pump();
    });
    source.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
    dest.on('drain', () => {
      if (!this.awaitingDrain) return;
      this.awaitingDrain = false;
      this.resumeAfterWait();
    });
  }

  /** Separate from the constructor so a cut at offset 0 fires only once the connection is wired. */
  start(): void {
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queued = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  buffered(): number {
    return this.queued + (this.dest.destroyed ? 0 : this.dest.writableLength);
  }

  private pump(): void {
    while (!this.waiting && !this.stopped) {
      if (this.offset === this.rules.cutAfter) {
        // Only reachable for cutAfter 0; later cuts happen when the last byte is written.
        this.stop();
        this.onCut();
        return;
      }
      if (this.startHold()) break;
      const head = this.queue[0];
      if (head === undefined) break;
      const size = this.pieceSize(head.length);
      if (size === 0) break;
      this.forward(head, size);
    }
    this.settleSource();
  }

  /** Begins a stall or blackhole once its offset is reached. */
  private startHold(): boolean {
    const { blackholeAfter, stall } = this.rules;
    if (blackholeAfter !== undefined && this.offset >= blackholeAfter) {
      this.waiting = true; // and nothing ever clears it
      return true;
    }
    if (stall !== undefined && !this.stallUsed && this.offset >= stall.after) {
      this.stallUsed = true;
      this.waitFor(stall.ms);
      return true;
    }
    return false;
  }

  /** How many bytes of the head chunk to write next; 0 means a throttle timer was set. */
  private pieceSize(available: number): number {
    let size = available;
    // Never write across an offset where something happens, so faults are byte-exact.
    const boundaries = [this.rules.cutAfter, this.rules.blackholeAfter];
    if (!this.stallUsed) boundaries.push(this.rules.stall?.after);
    for (const boundary of boundaries) {
      if (boundary !== undefined && boundary > this.offset) size = Math.min(size, boundary - this.offset);
    }

    if (this.rules.nextSlice !== undefined) {
      if (this.sliceLeft === 0) this.sliceLeft = this.rules.nextSlice();
      size = Math.min(size, this.sliceLeft);
    }

    const rate = this.rules.bytesPerSecond;
    if (rate !== undefined) {
      // Token bucket. The burst cap keeps the rate smooth on a ~50 ms scale; waiting for a
      // whole burst (or the whole piece, if smaller) avoids one timer per byte.
      const burst = Math.max(1, Math.floor(rate / 20));
      const now = Date.now();
      this.budget = Math.min(burst, this.budget + ((now - this.lastRefill) * rate) / 1000);
      this.lastRefill = now;
      const wanted = Math.min(size, burst);
      if (this.budget < wanted) {
        this.waitFor(Math.ceil(((wanted - this.budget) * 1000) / rate));
        return 0;
      }
      size = Math.min(size, Math.floor(this.budget));
      this.budget -= size;
    }
    return size;
  }

  private forward(head: Buffer, size: number): void {
    let piece = head.subarray(0, size);
    if (size === head.length) this.queue.shift();
    else this.queue[0] = head.subarray(size);
    this.queued -= size;

    const { flipAt, flipMask } = this.rules;
    if (flipAt !== undefined && flipAt >= this.offset && flipAt < this.offset + size) {
      piece = Buffer.from(piece); // never modify a buffer the socket layer handed us
      const at = flipAt - this.offset;
      piece.writeUInt8(piece.readUInt8(at) ^ flipMask, at);
    }
    this.offset += size;
    this.sliceLeft = Math.max(0, this.sliceLeft - size);
    this.onWrite(piece);

    if (this.offset === this.rules.cutAfter) {
      // Destroying now would discard the bytes still queued inside the socket; wait until the
      // kernel has them so exactly `cutAfter` bytes arrive.
      this.stop();
      this.dest.write(piece, () => this.onCut());
      return;
    }
    if (this.rules.nextSlice !== undefined) {
      // One slice per event-loop turn: written back to back they would merge again, in Node's
      // write queue or in the receiver's socket buffer, before anyone reads them.
      this.waiting = true;
      this.dest.write(piece, () => {
        if (this.stopped) return;
        this.immediate = setImmediate(() => {
          this.immediate = undefined;
          this.resumeAfterWait();
        });
      });
      return;
    }
    if (!this.dest.write(piece)) {
      this.waiting = true;
      this.awaitingDrain = true;
    }
  }

  private waitFor(ms: number): void {
    this.waiting = true;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.resumeAfterWait();
      },
      Math.max(1, ms),
    );
  }

  private resumeAfterWait(): void {
    if (this.stopped) return;
    this.waiting = false;
    this.pump();
  }

  /** Lets the source flow only when nothing is queued here; passes on its FIN once all its bytes have gone. */
  private settleSource(): void {
    if (this.stopped) return;
    if (this.queue.length > 0 || this.waiting) {
      this.source.pause();
    } else if (!this.sourceEnded) {
      this.source.resume();
    } else if (!this.endSent) {
      this.endSent = true;
      this.dest.end();
    }
  }
}

function slicerFor(slice: FaultPlan['slice']): (() => number) | undefined {
  if (slice === undefined) return undefined;
  if (slice === 'byte') return () => 1;
  return randomSlicer(slice.seed, slice.maxSlice ?? 16);
}

/** Slice sizes in 1..maxSlice from xorshift32: tiny, seedable, and plenty random for this. */
function randomSlicer(seed: number, maxSlice: number): () => number {
  // Mix the seed so nearby seeds diverge at once; xorshift's state must never be 0.
  let state = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return 1 + (state % maxSlice);
  };
}

function validate(plan: FaultPlan): void {
  const offsets: Array<[string, number | undefined]> = [
    ['flipAt', plan.flipAt],
    ['cutAfter', plan.cutAfter],
    ['cutAfterReverse', plan.cutAfterReverse],
    ['blackholeAfter', plan.blackholeAfter],
    ['stall.after', plan.stall?.after],
    ['stall.ms', plan.stall?.ms],
    ['onlyFirst', plan.onlyFirst],
  ];
  for (const [name, value] of offsets) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
    }
  }
  const mask = plan.flipMask;
  if (mask !== undefined && !(Number.isInteger(mask) && mask >= 1 && mask <= 0xff)) {
    throw new RangeError(`flipMask must be an integer in 1..255, got ${mask}`);
  }
  const maxSlice = typeof plan.slice === 'object' ? plan.slice.maxSlice : undefined;
  if (maxSlice !== undefined && !(Number.isSafeInteger(maxSlice) && maxSlice >= 1)) {
    throw new RangeError(`slice.maxSlice must be a positive integer, got ${maxSlice}`);
  }
  const rate = plan.bytesPerSecond;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
    throw new RangeError(`bytesPerSecond must be positive, got ${rate}`);
  }
}
