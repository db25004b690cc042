/**
 * Raw relay clients for the relay tests: a TCP socket that writes lines and
 * bytes as a test says, collects every byte it is sent, and waits (bounded)
 * for an answer or for the close. And the Debian transit relay (`twist3
 * transitrelay`) started on a port of its own choosing, when installed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterEach, onTestFinished } from 'vitest';

export class RawClient {
  readonly socket: Socket;
  private received: Buffer[] = [];
  private length = 0;
  private waiters = new Set<() => void>();
  /** True once the relay's FIN or a reset has arrived. */
  ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
  }

  /** Connects to 127.0.0.1:port (from `localAddress` if given); keeps the half-close open unless told. */
  static connect(port: number, localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  get bytes(): Buffer {
    if (this.received.length > 1) this.received = [Buffer.concat(this.received)];
    return this.received[0] ?? Buffer.alloc(0);
  }

  get text(): string {
    return this.bytes.toString('latin1');
  }

  /** Resolves once at least `n` bytes arrived; rejects after `ms` or if the connection ends first. */
  async waitForBytes(n: number, ms = 10_000): Promise<Buffer> {
    await this.until(() => this.length >= n, ms, `${n} bytes (have ${this.length})`);
    return this.bytes;
  }

  /** Resolves with everything received once the relay closed the connection (rejects after `ms`). */
  async waitForEnd(ms = 10_000): Promise<string> {
    await this.until(() => this.ended, ms, 'the end of the connection', true);
    return this.text;
  }

  close(): void {
    this.socket.destroy();
  }

  private until(done: () => boolean, ms: number, what: string, endOk = false): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (done()) finish(null);
        else if (this.ended && !endOk) finish(new Error(`ended before ${what}; got ${JSON.stringify(this.text.slice(0, 200))}`));
      };
      const finish = (err: Error | null): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(this.text.slice(0, 200))}`)), ms);
      this.waiters.add(check);
      check();
    });
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

const clients = new Set<RawClient>();
afterEach(() => {
  for (const c of clients) c.close();
  clients.clear();
});

/** A RawClient closed after the test. */
export async function rawClient(port: number, localAddress?: string): Promise<RawClient> {
  const c = await RawClient.connect(port, localAddress);
  clients.add(c);
  return c;
}

/** Resolves once `condition()` holds, checked each few milliseconds; rejects after `ms`. */
export async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** twist3 with the transitrelay plugin (Debian's magic-wormhole-transit-relay; .ci/run installs it as root). */
export const HAVE_TWIST3 = spawnSync('twist3', ['transitrelay', '--help'], { stdio: 'ignore' }).status === 0;

/** The Debian transit relay on 127.0.0.1, port chosen by the OS; killed after the test. */
export async function transitRelay(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn('twist3', ['transitrelay', '--port=tcp:0:interface=127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`twist3 did not start within 20 s: ${out}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /Transit starting on (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`twist3 exited (${code}): ${out}`)));
  });
  return { port, child };
}
