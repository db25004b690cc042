/**
 * `ferry receive --stdout`: the incoming bytes go to a stream (standard
 * output) as they arrive, with backpressure, instead of into a file. What
 * is written cannot be taken back: a failed verification shows in the exit
 * code and on stderr, as with `curl | tar x`.
 */
import type { Writable } from 'node:stream';
import { FerryError } from '../protocol/errors.js';
import type { Sink } from './sink.js';

export class StdoutSink implements Sink {
  private readonly stream: Writable;
  private waiting = false;
  private failure: FerryError | null = null;
  onError: (err: FerryError) => void = () => {};
  onDrain: () => void = () => {};

  constructor(stream: Writable) {
    this.stream = stream;
    stream.once('error', (err: NodeJS.ErrnoException) => {
      this.failure = new FerryError('ERR_IO', `cannot write to standard output: ${err.code ?? err.message}`, { cause: err });
      this.onError(this.failure);
    });
  }

  get full(): boolean {
    return this.waiting;
  }

  write(piece: Buffer): void {
    if (this.failure) throw this.failure;
    if (!this.stream.write(piece) && !this.waiting) {
      this.waiting = true;
      this.stream.once('drain', () => {
        this.waiting = false;
        this.onDrain();
      });
    }
  }

  async finish(): Promise<void> {
    if (this.stream.writableNeedDrain) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.stream.off('drain', done);
          this.stream.off('error', done);
          this.stream.off('close', done);
          resolve();
        };
        this.stream.on('drain', done).on('error', done).on('close', done);
      });
    }
    if (this.failure) throw this.failure;
  }
}
