/**
 * The far end of a duplex pair, played by the test: it writes raw bytes and
 * decodes what the Connection under test sends, with bounded waits that do
 * not depend on (possibly faked) timers.
 */
import { FrameDecoder } from '../../src/protocol/decoder.js';
import type { ControlFrame } from '../../src/protocol/messages.js';
import type { DuplexEnd } from './duplex-pair.js';

// Taken before any test fakes the timers: a bound must hold even then.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** Resolves like `promise`, or rejects after `ms` of real time. */
export function within<T>(promise: Promise<T>, what: string, ms = 2000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => realClearTimeout(timer));
}

export class WirePeer {
  readonly end: DuplexEnd;
  readonly frames: ControlFrame[] = [];
  private readonly decoder: FrameDecoder;
  private readonly waiting: Array<() => void> = [];
  /** Resolves on the 'end' of what the Connection sends (its FIN). */
  readonly ended: Promise<void>;

  constructor(end: DuplexEnd) {
    this.end = end;
    this.decoder = new FrameDecoder({
      onFrame: (frame) => {
        this.frames.push(frame);
        for (const wake of this.waiting.splice(0)) wake();
      },
      onData: () => {},
    });
    end.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    this.ended = new Promise((resolve) => end.once('end', () => resolve()));
  }

  write(...frames: Buffer[]): void {
    for (const frame of frames) this.end.write(frame);
  }

  /** The `index`th frame the Connection sent (0 is the first), waiting for it if need be. */
  async frame(index: number, ms = 2000): Promise<ControlFrame> {
    const arrived = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.frames.length > index) resolve();
        else this.waiting.push(check);
      };
      check();
    });
    await within(arrived, `frame #${index} from the connection`, ms);
    return this.frames[index]!;
  }
}
