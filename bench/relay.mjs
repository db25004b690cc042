#!/usr/bin/env node
// What a relay costs: SIZE_MB (default 1024) of plain TCP pushed over
// loopback from this process to a sink child process, once straight to the
// sink and once through `ferry relay` (startRelay, in a child process of its
// own, with its default limits), the sink pairing as the receiver side. Prints
// MB/s per mode (best of RUNS, default 2), measured from the first byte
// written to the sink having read the last one, and the relay child's CPU
// seconds (user + system, process.cpuUsage) per GiB forwarded.
// Run after `npm run build`: node bench/relay.mjs [SIZE_MB] [RUNS]
// (FERRY_DIST=dir points it at another build of src/).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { pathToFileURL } from 'node:url';

const dist = process.env.FERRY_DIST ? pathToFileURL(`${process.env.FERRY_DIST}/`) : new URL('../dist/', import.meta.url);
const { startRelay } = await import(new URL('relay/server.js', dist).href);
const { RECEIVER_SIDE, SENDER_SIDE, relayLine } = await import(new URL('relay/wire.js', dist).href);

const CHUNK = 1024 * 1024;
const TIMEOUT_MS = 300_000;
const ROOM = 'b'.repeat(64);

const role = process.argv[2];
if (role === '--relay') await relayChild();
else if (role === '--sink') await sinkChild();
else await parent(Number(process.argv[2] ?? 1024) * CHUNK, Number(process.argv[3] ?? 2));

/** The relay, answering `cpu` with its CPU use so far. */
async function relayChild() {
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  process.on('message', (m) => {
    if (m === 'cpu') process.send({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss });
    if (m === 'exit') void relay.close().then(() => process.exit(0));
  });
  process.send({ port: relay.port });
}

/** Counts bytes to `size`: as a listener (direct), or dialling the relay as the receiver side. */
async function sinkChild() {
  const count = (socket, size, skip) => {
    let got = -skip;
    socket.on('data', (chunk) => {
      got += chunk.length;
      if (got === size) process.send({ done: true });
    });
  };
  process.on('message', (m) => {
    if (m.listen) {
      const server = createServer((socket) => count(socket, m.size, 0));
      server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
    } else if (m.relay) {
      const socket = connect(m.relay, '127.0.0.1', () => {
        socket.write(relayLine(ROOM, RECEIVER_SIDE));
        process.send({ joined: true });
      });
      // 'ok\n' comes first: three bytes that are not the payload.
      count(socket, m.size, 3);
    } else if (m === 'exit') process.exit(0);
  });
  process.send({ ready: true });
}

function child(flag) {
  const proc = fork(new URL(import.meta.url), [flag], { stdio: 'inherit' });
  const next = (match) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${flag}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      const on = (m) => {
        if (!match(m)) return;
        clearTimeout(timer);
        proc.off('message', on);
        resolve(m);
      };
      proc.on('message', on);
    });
  return { proc, next };
}

/** Writes `size` bytes of `block` to `socket`, waiting for 'drain' as it should. */
async function pump(socket, size, block) {
  for (let sent = 0; sent < size; sent += block.length) {
    if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

async function once(mode, size, block) {
  const sink = child('--sink');
  await sink.next((m) => m.ready);
  let relay;
  let socket;
  let cpuBefore;
  let rssBefore;
  if (mode === 'direct') {
    sink.proc.send({ listen: true, size });
    const { port } = await sink.next((m) => m.port);
    socket = await dial(port, '');
  } else {
    relay = child('--relay');
    const { port } = await relay.next((m) => m.port);
    sink.proc.send({ relay: port, size });
    await sink.next((m) => m.joined);
    socket = await dial(port, relayLine(ROOM, SENDER_SIDE));
    await new Promise((resolve) => socket.once('data', resolve)); // ok
    relay.proc.send('cpu');
    ({ cpu: cpuBefore, rss: rssBefore } = await relay.next((m) => m.cpu));
  }
  const done = sink.next((m) => m.done);
  const started = performance.now();
  await pump(socket, size, block);
  await done;
  const seconds = (performance.now() - started) / 1000;
  const result = { mode, seconds, mbps: size / 1e6 / seconds };
  if (relay) {
    relay.proc.send('cpu');
    const { cpu, rss } = await relay.next((m) => m.cpu);
    const cpuS = (cpu.user - cpuBefore.user + cpu.system - cpuBefore.system) / 1e6;
    Object.assign(result, { relayCpuS: cpuS, relayCpuSPerGiB: cpuS / (size / 1024 ** 3), relayRssBeforeMiB: rssBefore / 2 ** 20, relayRssMiB: rss / 2 ** 20 });
    relay.proc.send('exit');
  }
  socket.destroy();
  sink.proc.send('exit');
  return result;
}

function dial(port, line) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      if (line) socket.write(line);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function parent(size, runs) {
  const block = randomBytes(CHUNK);
  const best = {};
  for (let run = 0; run < runs; run++) {
    for (const mode of ['direct', 'relay']) {
      const r = await once(mode, size, block);
      process.stderr.write(`${JSON.stringify(r)}\n`);
      if (!best[mode] || r.mbps > best[mode].mbps) best[mode] = r;
    }
  }
  const mb = (size / 1e6).toFixed(0);
  console.log(`${mb} MB of plain TCP over loopback, best of ${runs}:`);
  console.log(`  direct        ${best.direct.mbps.toFixed(0)} MB/s`);
  console.log(`  via relay     ${best.relay.mbps.toFixed(0)} MB/s (${((100 * best.relay.mbps) / best.direct.mbps).toFixed(0)}% of direct)`);
  console.log(`  relay CPU     ${best.relay.relayCpuSPerGiB.toFixed(2)} s per GiB (user + system), RSS ${best.relay.relayRssBeforeMiB.toFixed(0)} MiB paired, ${best.relay.relayRssMiB.toFixed(0)} MiB after`);
}
