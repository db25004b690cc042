#!/usr/bin/env node
/**
 * How much does a resumed transfer re-send? One measurement, not part of
 * `npm run bench` (nothing here asserts a time):
 *
 *   1. a 200 MiB file of random data (--size-mb), one `ferry receive` (kept
 *      running across both runs, stopped at the end);
 *   2. `ferry send --retries 0` through a small TCP proxy that cuts the
 *      connection once 100 MiB (--cut-at 0.5 of the file) of client->server
 *      bytes have passed: ferry must exit 1 and the receiver keeps a partial;
 *   3. `ferry send` again, through a proxy that only counts (--direct: no
 *      proxy at all, the wire is then not counted), and its `sent` event:
 *      resumedFrom and transferred.
 *
 * Prints the bytes on the wire in both runs (both directions), the second
 * run's `transferred` and `resumedFrom`, the re-sent fraction and the wall
 * time of both runs; --json prints the same as one JSON object instead.
 *
 *   npm run build && node bench/resume.mjs [--size-mb 200] [--cut-at 0.5] [--direct] [--json] [--tmpdir DIR]
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sha256 } from './lib/data.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'dist', 'ferry.mjs');
const LOOPBACK = '127.0.0.1';
const MiB = 1024 * 1024;
const NAME = 'resume.bin';

// ---------------------------------------------------------------- ferry's command lines: here and only here

/**
 * Every ferry argument list of this script. `receiver` is what startReceiver()
 * returned: its port and its `listening` event (where anything else a sender
 * needs from the receiver would be read).
 */
const ferryArgs = {
  receive: (dir) => ['receive', '--json', '--host', LOOPBACK, '--port', '0', '--dir', dir],
  // Encrypted, as ferry runs by default: the code is the one the receiver printed.
  send: (file, receiver, port, extra = []) => ['send', file, '--to', `${LOOPBACK}:${port}`, '--json', '--code', receiver.listening.code, ...extra],
};

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const options = { sizeMb: 200, cutAt: 0.5, direct: false, json: false, tmpdir: tmpdir(), timeoutS: 600 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--size-mb') options.sizeMb = Number(value());
    else if (flag === '--cut-at') options.cutAt = Number(value());
    else if (flag === '--tmpdir') options.tmpdir = value();
    else if (flag === '--timeout-s') options.timeoutS = Number(value());
    else if (flag === '--direct') options.direct = true;
    else if (flag === '--json') options.json = true;
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: node bench/resume.mjs [--size-mb 200] [--cut-at 0.5] [--direct] [--json] [--tmpdir DIR] [--timeout-s 600]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  if (!(Number.isInteger(options.sizeMb) && options.sizeMb > 0)) throw new Error('--size-mb must be a positive whole number');
  if (!(options.cutAt > 0 && options.cutAt < 1)) throw new Error('--cut-at must be between 0 and 1');
  if (!(options.timeoutS > 0)) throw new Error('--timeout-s must be positive');
  return options;
}

// ---------------------------------------------------------------- processes

const children = new Set();

/** Runs `node dist/ferry.mjs ARGS`, collecting its JSON lines; `exit` resolves with { code, signal }. */
function runFerry(args) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const events = [];
  const watchers = new Set();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr = (stderr + s).slice(-4000)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    events.push(event);
    for (const w of [...watchers]) w();
  });
  const exit = new Promise((resolve) =>
    child.once('close', (code, signal) => {
      children.delete(child);
      for (const w of [...watchers]) w();
      resolve({ code, signal });
    }),
  );
  let exited = false;
  void exit.then(() => (exited = true));
  /** The first event matching `match`; rejects after `ms` or if the process exits first. */
  const waitFor = (match, ms, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${what} within ${ms / 1000} s: ${stderr}`)), ms);
      const done = (error, event) => {
        clearTimeout(timer);
        watchers.delete(check);
        if (error) reject(error);
        else resolve(event);
      };
      const check = () => {
        const found = events.find(match);
        if (found) done(null, found);
        else if (exited) done(new Error(`ferry exited before ${what}: ${stderr}`));
      };
      watchers.add(check);
      check();
    });
  return { child, events, exit, waitFor, stderr: () => stderr };
}

/** Resolves with the exit, or kills the process and rejects after `ms`. */
async function finish(proc, ms, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`${what} still running after ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([proc.exit, expired]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- a tiny TCP proxy

/**
 * Forwards every connection to `target`, counting bytes both ways. With
 * `cutAfter`, destroys both sockets once exactly that many client->server
 * bytes have been handed to the kernel (each connection counted alone).
 */
async function startProxy(target, cutAfter = Infinity) {
  const wire = { up: 0, down: 0, connections: 0 };
  const sockets = new Set();
  const server = createServer((client) => {
    wire.connections += 1;
    const upstream = connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let sent = 0;
    let cut = false;
    const forward = (from, to, chunk, count) => {
      count(chunk.length);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    };
    client.on('data', (chunk) => {
      if (cut) return;
      const room = cutAfter - sent;
      if (chunk.length < room) {
        sent += chunk.length;
        forward(client, upstream, chunk, (n) => (wire.up += n));
        return;
      }
      cut = true;
      const last = chunk.subarray(0, room);
      sent += last.length;
      wire.up += last.length;
      upstream.write(last, () => {
        client.destroy();
        upstream.destroy();
      });
    });
    upstream.on('data', (chunk) => {
      if (!cut) forward(upstream, client, chunk, (n) => (wire.down += n));
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, resolve);
  });
  return {
    port: server.address().port,
    wire,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------- data

/** `bytes` of random data, written 1 MiB at a time; returns its SHA-256. */
async function makeFile(path, bytes) {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(MiB);
  const file = await open(path, 'w');
  try {
    for (let left = bytes; left > 0; ) {
      const n = Math.min(left, buffer.length);
      randomFillSync(buffer, 0, n);
      hash.update(buffer.subarray(0, n));
      await file.write(buffer, 0, n);
      left -= n;
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

// ---------------------------------------------------------------- the measurement

const log = (text) => process.stderr.write(`${text}\n`);
const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first`);
  const size = options.sizeMb * MiB;
  const cutAfter = Math.round(size * options.cutAt);
  const runMs = options.timeoutS * 1000;

  mkdirSync(options.tmpdir, { recursive: true });
  const work = mkdtempSync(join(options.tmpdir, 'ferry-resume-bench-'));
  const cleanup = () => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.on(signal, () => process.exit(code));

  const src = join(work, NAME);
  const dst = join(work, 'received');
  mkdirSync(dst);
  log(`resume bench: writing ${mib(size)} of random data`);
  const digest = await makeFile(src, size);

  const receiver = runFerry(ferryArgs.receive(dst));
  const listening = await receiver.waitFor((e) => e.event === 'listening', 10_000, 'listening event');
  const rx = { port: listening.port, listening };

  // Run 1: cut at cutAfter client->server bytes, no retry.
  log(`run 1: ferry send --retries 0 through a proxy that cuts after ${mib(cutAfter)}`);
  const cutting = await startProxy({ host: LOOPBACK, port: rx.port }, cutAfter);
  let t0 = performance.now();
  const first = runFerry(ferryArgs.send(src, rx, cutting.port, ['--retries', '0']));
  const firstExit = await finish(first, runMs, 'run 1');
  const firstSeconds = (performance.now() - t0) / 1000;
  await cutting.close();
  if (firstExit.code !== 1) throw new Error(`run 1: ferry send exited ${firstExit.code ?? firstExit.signal}, want 1 (cut): ${first.stderr()}`);
  // Let the receiver notice the cut and settle its partial before the second run.
  await receiver.waitFor((e) => e.event === 'error' && e.name === NAME, 10_000, "the receiver's error event for the cut").catch((err) => log(`note: ${err.message}`));

  // Run 2: the same file again, through a proxy that only counts (or none with --direct).
  log(`run 2: ferry send ${options.direct ? 'directly' : 'through a counting proxy'}`);
  const counting = options.direct ? null : await startProxy({ host: LOOPBACK, port: rx.port });
  t0 = performance.now();
  const second = runFerry(ferryArgs.send(src, rx, counting ? counting.port : rx.port));
  const secondExit = await finish(second, runMs, 'run 2');
  const secondSeconds = (performance.now() - t0) / 1000;
  if (counting) await counting.close();
  if (secondExit.code !== 0) throw new Error(`run 2: ferry send exited ${secondExit.code ?? secondExit.signal}, want 0: ${second.stderr()}`);
  const sent = second.events.find((e) => e.event === 'sent' && e.name === NAME);
  if (!sent) throw new Error('run 2: no sent event');

  receiver.child.kill('SIGINT');
  await finish(receiver, 10_000, 'ferry receive').catch(() => receiver.child.kill('SIGKILL'));
  const intact = (await sha256(join(dst, NAME))) === digest;
  if (!intact) throw new Error('the received file differs from the source');

  const result = {
    bytes: size,
    cutAfter,
    run1: { exitCode: firstExit.code, seconds: +firstSeconds.toFixed(3), wire: { up: cutting.wire.up, down: cutting.wire.down } },
    run2: {
      exitCode: secondExit.code,
      seconds: +secondSeconds.toFixed(3),
      wire: counting ? { up: counting.wire.up, down: counting.wire.down, connections: counting.wire.connections } : null,
      resumedFrom: sent.resumedFrom,
      transferred: sent.transferred,
    },
    resentFraction: +(sent.transferred / size).toFixed(4),
    intact,
  };

  if (options.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const wireText = (w) => (w ? `${w.up} B up + ${w.down} B down (${mib(w.up + w.down)})` : 'not counted (--direct)');
  process.stdout.write(
    [
      `file: ${mib(size)} (${size} B), cut after ${cutAfter} client->server bytes`,
      `run 1 (cut, --retries 0): exit ${firstExit.code}, ${firstSeconds.toFixed(2)} s, wire ${wireText(result.run1.wire)}`,
      `run 2 (resume):           exit ${secondExit.code}, ${secondSeconds.toFixed(2)} s, wire ${wireText(result.run2.wire)}`,
      `run 2 sent event: resumedFrom ${sent.resumedFrom} B (${mib(sent.resumedFrom)}), transferred ${sent.transferred} B (${mib(sent.transferred)})`,
      `re-sent: ${(result.resentFraction * 100).toFixed(1)}% of the file (${((1 - options.cutAt) * 100).toFixed(0)}% is the ideal); received file intact: ${intact}`,
      '',
    ].join('\n'),
  );
}

main().catch((err) => {
  process.stderr.write(`resume bench: ${err.message}\n`);
  // The 'exit' handler kills the receiver and deletes the temp dir.
  process.exit(1);
});
