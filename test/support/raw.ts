/**
 * A raw peer for tests: speaks bytes over a real socket, outside src/sender,
 * so tests can send what a correct sender never would and read what comes back.
 */
import { connect, type Socket } from 'node:net';
import { FrameType } from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { plain, type PlainFrame } from './decode.js';

export interface RawPeer {
  socket: Socket;
  /** Frames received so far, decoded (PROGRESS heartbeats left out: see `heartbeats`). */
  frames: PlainFrame[];
  /** How many PROGRESS heartbeats arrived. */
  heartbeats(): number;
  send(bytes: Buffer): void;
  /** Resolves with the n-th received frame (0-based), or rejects after `ms`. */
  frame(n: number, ms?: number): Promise<PlainFrame>;
  /** Resolves when the peer closed the connection, or rejects after `ms`. */
  closed(ms?: number): Promise<void>;
}

/** `localAddress` picks the source address (127.0.0.2 and up are loopback too: distinct sources for the receiver). */
export async function rawConnect(port: number, host = '127.0.0.1', options: { localAddress?: string } = {}): Promise<RawPeer> {
  const socket = connect({ port, host, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const frames: PlainFrame[] = [];
  let heartbeats = 0;
  let notify = (): void => {};
  let ended = false;
  // Heartbeats (PROGRESS) come at the receiver's pace: kept out of `frames` so indices stay stable.
  const decoder = new FrameDecoder({
    onFrame: (f) => {
      if (f.type === FrameType.Heartbeat) heartbeats++;
      else frames.push(plain(f));
      notify();
    },
    onData: () => {},
  });
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch {
      socket.destroy();
    }
  });
  socket.on('close', () => ((ended = true), notify()));
  const waitFor = (ready: () => boolean, what: string, ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      const check = (): void => {
        if (ready()) {
          clearTimeout(timer);
          resolve();
        } else if (ended && what !== 'close') {
          clearTimeout(timer);
          reject(new Error(`connection closed before ${what}; got ${JSON.stringify(frames)}`));
        }
      };
      const previous = notify;
      notify = () => (previous(), check());
      check();
    });
  return {
    socket,
    frames,
    heartbeats: () => heartbeats,
    send: (bytes) => void socket.write(bytes),
    frame: async (n, ms = 5000) => {
      await waitFor(() => frames.length > n, `frame ${n}`, ms);
      return frames[n]!;
    },
    closed: (ms = 5000) => waitFor(() => ended, 'close', ms),
  };
}
