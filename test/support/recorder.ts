/**
 * A recording TCP proxy: it forwards every connection to a target and keeps
 * every byte that went each way. Put in front of a relay (the clients dial
 * the recorder as their relay), it holds what the relay, or anyone on its
 * path, saw. In the test process, on loopback.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** One connection's bytes: `up` from the client to the target, `down` back. */
export interface Recording {
  up: Buffer;
  down: Buffer;
}

export interface Recorder {
  host: string;
  port: number;
  /** Every connection so far, in the order they were accepted. */
  recordings(): Recording[];
  /** Connections open right now (client side). */
  open(): number;
  /** Stops listening and destroys every connection, both sides; resolves once the server is closed. */
  close(): Promise<void>;
}

interface Stream {
  chunks: Buffer[];
}

export async function startRecorder(target: { host: string; port: number }, host = '127.0.0.1'): Promise<Recorder> {
  const streams: Array<{ up: Stream; down: Stream }> = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target);
    const recorded = { up: { chunks: [] }, down: { chunks: [] } };
    streams.push(recorded);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    forward(client, upstream, recorded.up);
    forward(upstream, client, recorded.down);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const closed = new Promise<void>((resolve) => server.once('close', resolve));
  let closing: Promise<void> | undefined;
  return {
    host,
    port: (server.address() as AddressInfo).port,
    recordings: () => streams.map((s) => ({ up: Buffer.concat(s.up.chunks), down: Buffer.concat(s.down.chunks) })),
    open: () => sockets.size,
    close() {
      closing ??= (async () => {
        server.close();
        for (const s of sockets) s.destroy();
        await closed;
      })();
      return closing;
    },
  };
}

/** Copies `from` to `to`, keeping each chunk; honours backpressure, forwards a FIN, and tears both down on an error. */
function forward(from: Socket, to: Socket, stream: Stream): void {
  from.on('data', (chunk: Buffer) => {
    stream.chunks.push(chunk);
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
  from.on('error', () => to.destroy());
  from.on('close', () => {
    if (!to.writableEnded) to.destroy();
  });
}

/** The labels of the needles found anywhere in any recorded stream. */
export function leaks(recordings: Recording[], needles: Record<string, Buffer>): string[] {
  return Object.entries(needles)
    .filter(([, needle]) => recordings.some((r) => r.up.includes(needle) || r.down.includes(needle)))
    .map(([label]) => label);
}
