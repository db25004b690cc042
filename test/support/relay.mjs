#!/usr/bin/env node
/**
 * A tiny standalone TCP relay that adds a fixed one-way delay in each
 * direction. Meant to run inside a network namespace (`ip netns exec NS node
 * relay.mjs ...`), where the in-process fault proxy of test/support/proxy.ts
 * cannot go.
 *
 *   node relay.mjs --listen HOST:PORT --target HOST:PORT [--delay MS] [--window BYTES] [--lifetime S]
 *
 * Every chunk read from one side is written to the other DELAY ms after it
 * arrived, in order. Backpressure is honoured: bytes waiting in the delay
 * line plus bytes the outgoing socket still buffers are capped at WINDOW
 * (default 4 MiB) per direction; above it, reading from the source pauses
 * until the line falls under half of it. A FIN is forwarded after the same
 * delay, behind the data; an error or a close on either side closes both.
 *
 * Prints one JSON line on stdout once listening:
 *   {"event":"listening","host":...,"port":N}
 * and exits by itself after LIFETIME seconds (default 120), so a forgotten
 * relay can never linger.
 */
import { connect, createServer } from 'node:net';

function parseArgs(argv) {
  const out = { delay: 20, window: 4 * 1024 * 1024, lifetime: 120 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${key}: missing value`);
    if (key === '--listen') out.listen = hostPort(value);
    else if (key === '--target') out.target = hostPort(value);
    else if (key === '--delay') out.delay = Number(value);
    else if (key === '--window') out.window = Number(value);
    else if (key === '--lifetime') out.lifetime = Number(value);
    else throw new Error(`unknown option ${key}`);
  }
  if (!out.listen || !out.target) throw new Error('usage: relay.mjs --listen HOST:PORT --target HOST:PORT [--delay MS] [--window BYTES] [--lifetime S]');
  for (const k of ['delay', 'window', 'lifetime']) {
    if (!Number.isFinite(out[k]) || out[k] < 0) throw new Error(`--${k} must be a non-negative number`);
  }
  return out;
}

function hostPort(text) {
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad HOST:PORT ${text}`);
  return { host: text.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

/**
 * One direction: reads `from`, writes to `to` `delay` ms later, in order.
 * `onFail` closes the whole connection.
 */
function pipeDelayed(from, to, delay, window, onFail) {
  /** @type {Array<{ due: number, chunk: Buffer | null }>} null = FIN */
  const line = [];
  let inLine = 0;
  let timer = null;
  let blocked = false; // waiting for 'drain' on `to`
  let paused = false;

  const load = () => inLine + to.writableLength;
  const maybeResume = () => {
    if (paused && load() <= window / 2) {
      paused = false;
      from.resume();
    }
  };

  const pump = () => {
    timer = null;
    while (line.length > 0 && !blocked) {
      const head = line[0];
      const wait = head.due - performance.now();
      if (wait > 0) {
        timer = setTimeout(pump, Math.max(1, Math.ceil(wait)));
        return;
      }
      line.shift();
      if (head.chunk === null) {
        to.end();
        return;
      }
      inLine -= head.chunk.length;
      if (to.destroyed) return;
      if (!to.write(head.chunk)) blocked = true;
    }
    maybeResume();
  };

  to.on('drain', () => {
    blocked = false;
    maybeResume();
    if (!timer) pump();
  });
  from.on('data', (chunk) => {
    line.push({ due: performance.now() + delay, chunk });
    inLine += chunk.length;
    if (load() > window && !paused) {
      paused = true;
      from.pause();
    }
    if (!timer && !blocked) pump();
  });
  from.on('end', () => {
    line.push({ due: performance.now() + delay, chunk: null });
    if (!timer && !blocked) pump();
  });
  from.on('error', onFail);
  return () => {
    if (timer) clearTimeout(timer);
    timer = null;
    line.length = 0;
  };
}

const options = parseArgs(process.argv.slice(2));
const sockets = new Set();

const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
  // Half-open on both legs: a FIN is forwarded after the delay, not at once.
  const upstream = connect({ ...options.target, allowHalfOpen: true });
  sockets.add(client);
  sockets.add(upstream);
  let stops = [];
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    for (const stop of stops) stop();
    client.destroy();
    upstream.destroy();
  };
  // A full close (both FINs delivered) or any error ends the pair.
  let ends = 0;
  const onFinished = () => {
    if (++ends === 2) closeBoth();
  };
  client.on('close', () => {
    sockets.delete(client);
    closeBoth();
  });
  upstream.on('close', () => {
    sockets.delete(upstream);
    closeBoth();
  });
  client.on('finish', onFinished);
  upstream.on('finish', onFinished);
  upstream.on('error', closeBoth);
  upstream.once('connect', () => {
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    stops = [
      pipeDelayed(client, upstream, options.delay, options.window, closeBoth),
      pipeDelayed(upstream, client, options.delay, options.window, closeBoth),
    ];
    client.resume();
  });
});

server.on('error', (err) => {
  process.stderr.write(`relay: ${err.message}\n`);
  process.exit(1);
});

server.listen({ host: options.listen.host, port: options.listen.port }, () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ event: 'listening', host: address.address, port: address.port })}\n`);
});

const stop = () => {
  server.close();
  for (const s of sockets) s.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(() => {
  process.stderr.write(`relay: lifetime of ${options.lifetime} s is over\n`);
  stop();
}, options.lifetime * 1000).unref();
