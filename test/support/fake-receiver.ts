/**
 * A scripted receiver for sender tests: a real loopback listener (port 0)
 * that speaks raw frames over the plain (--insecure) session, so a test can
 * answer what a correct receiver never would and record what the sender says.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { FrameType, HashId } from '../../src/protocol/constants.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import type { ControlFrame } from '../../src/protocol/messages.js';
import { encodeHello } from '../../src/protocol/messages.js';

export interface FakePeer {
  socket: Socket;
  /** Control frames from the sender, in order (DATA is only counted). */
  frames: ControlFrame[];
  /** DATA payload bytes received since the last control frame. */
  dataBytes: number;
  say(frame: Buffer): void;
}

export interface Script {
  /** Called for each control frame from the sender, after it is recorded. Default: answers HELLO with HELLO (SHA-256 only). */
  onFrame?(frame: ControlFrame, peer: FakePeer): void;
  /** Called after each DATA piece, with `peer.dataBytes` updated. */
  onData?(peer: FakePeer): void;
}

export interface FakeReceiver {
  port: number;
  /** One per connection the sender made. */
  peers: FakePeer[];
  /** Resolves with the first frame of `type` on any connection, or rejects after `ms`. */
  frame<T extends FrameType>(type: T, ms?: number): Promise<Extract<ControlFrame, { type: T }>>;
  close(): Promise<void>;
}

/** HELLO answered with SHA-256 only, so that tests can compute digests with node:crypto. */
export function answerHello(frame: ControlFrame, peer: FakePeer): boolean {
  if (frame.type !== FrameType.Hello) return false;
  peer.say(encodeHello([HashId.Sha256]));
  return true;
}

export async function fakeReceiver(script: Script = {}): Promise<FakeReceiver> {
  const peers: FakePeer[] = [];
  const sockets = new Set<Socket>();
  let notify = (): void => {};
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const peer: FakePeer = { socket, frames: [], dataBytes: 0, say: (bytes) => void (socket.writable && socket.write(bytes)) };
    peers.push(peer);
    const decoder = new FrameDecoder({
      onFrame: (frame) => {
        peer.frames.push(frame);
        peer.dataBytes = 0;
        if (script.onFrame) script.onFrame(frame, peer);
        else answerHello(frame, peer);
        notify();
      },
      onData: (piece) => {
        peer.dataBytes += piece.length;
        script.onData?.(peer);
      },
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    peers,
    frame: (type, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no frame of type 0x${type.toString(16)} within ${ms} ms`)), ms);
        const check = (): void => {
          const found = peers.flatMap((p) => p.frames).find((f) => f.type === type);
          if (!found) return;
          clearTimeout(timer);
          resolve(found as Extract<ControlFrame, { type: typeof type }>);
        };
        const previous = notify;
        notify = () => (previous(), check());
        check();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
