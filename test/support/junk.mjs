#!/usr/bin/env node
/**
 * Junk and idle clients for a relay: a standalone process to run inside a
 * network namespace while a real pair transfers through the same relay.
 *
 *   node junk.mjs --target HOST:PORT [--idle N] [--random N] [--lines N]
 *                 [--trickle N] [--allocate N] [--churn N] [--lifetime S]
 *
 * Opens, all at once:
 *   idle      connections that never send a byte;
 *   random    connections that send 64 KiB of random bytes, then nothing;
 *   lines     connections that send one malformed line each (a cycle of
 *             near misses of the relay's lines, an HTTP request, an overlong
 *             line without a newline, NUL bytes);
 *   trickle   connections that send a well-formed pairing line for a random
 *             room one byte every 200 ms;
 *   allocate  connections that ask for a nameplate and then wait in it;
 *   churn     loops that each send random bytes on a fresh connection, wait
 *             until the relay closes it, and start again, until the end.
 * Every connection is kept open until the relay closes it.
 *
 * Prints {"event":"ready","connected":{KIND:N},"failed":{KIND:N}} once every
 * connection has connected or failed, and on SIGTERM (or after LIFETIME
 * seconds, default 60) {"event":"summary","connected":...,"closedByRelay":{KIND:N},
 * "churned":N,"bytesFromRelay":N} before exiting 0 (churn connections count
 * only in "churned", the connections the loops made).
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const KINDS = ['idle', 'random', 'lines', 'trickle', 'allocate'];
const counts = Object.fromEntries(KINDS.map((k) => [k, 0]));
let target;
let lifetime = 60;
let churn = 0;
let churned = 0;
let stopping = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const key = args[i].replace(/^--/, '');
  const value = args[i + 1];
  if (value === undefined) throw new Error(`--${key}: missing value`);
  if (key === 'target') {
    const colon = value.lastIndexOf(':');
    target = { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
  } else if (key === 'lifetime') lifetime = Number(value);
  else if (key === 'churn') churn = Number(value);
  else if (KINDS.includes(key)) counts[key] = Number(value);
  else throw new Error(`unknown option --${key}`);
}
if (!target) throw new Error('usage: junk.mjs --target HOST:PORT [--idle N] [--random N] [--lines N] [--trickle N] [--allocate N] [--lifetime S]');

const hex = (bytes) => randomBytes(bytes).toString('hex');
const BAD_LINES = [
  'please relay zz for side 00\n',
  `please relay ${hex(32)} for side ${hex(8)} and more\n`,
  `please relay ${hex(32).toUpperCase()} for side ${hex(8)}\n`,
  `please relay ${hex(31)} for side ${hex(8)}\n`,
  'please allocate for side nothex!\n',
  'GET / HTTP/1.1\r\nHost: relay\r\n\r\n',
  'a'.repeat(4096),
  '\0'.repeat(64),
  '\n',
];

const connected = Object.fromEntries(KINDS.map((k) => [k, 0]));
const failed = Object.fromEntries(KINDS.map((k) => [k, 0]));
const closedByRelay = Object.fromEntries(KINDS.map((k) => [k, 0]));
let bytesFromRelay = 0;
let pending = KINDS.reduce((sum, k) => sum + counts[k], 0);
const sockets = new Set();
const timers = new Set();

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function settled() {
  if (--pending === 0) print({ event: 'ready', connected, failed });
}

function open(kind, index) {
  const socket = connect(target);
  sockets.add(socket);
  let isConnected = false;
  socket.on('connect', () => {
    isConnected = true;
    connected[kind]++;
    settled();
    if (kind === 'random') socket.write(randomBytes(64 * 1024));
    else if (kind === 'lines') socket.write(BAD_LINES[index % BAD_LINES.length]);
    else if (kind === 'allocate') socket.write(`please allocate for side ${hex(8)}\n`);
    else if (kind === 'trickle') {
      const line = Buffer.from(`please relay ${hex(32)} for side ${hex(8)}\n`);
      let at = 0;
      const timer = setInterval(() => {
        if (at >= line.length || socket.destroyed) {
          clearInterval(timer);
          return;
        }
        socket.write(line.subarray(at, ++at));
      }, 200);
      timers.add(timer);
    }
  });
  socket.on('data', (chunk) => (bytesFromRelay += chunk.length));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    sockets.delete(socket);
    if (isConnected) closedByRelay[kind]++;
    else {
      failed[kind]++;
      settled();
    }
  });
}

/** One churn loop: a connection, 4 KiB of random bytes, and the next connection once the relay has closed this one. */
function churnLoop() {
  if (stopping) return;
  const socket = connect(target);
  sockets.add(socket);
  socket.on('connect', () => {
    churned++;
    socket.write(randomBytes(4096));
  });
  socket.on('data', (chunk) => (bytesFromRelay += chunk.length));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    sockets.delete(socket);
    // Through a timer, not at once: a relay that refuses in a microsecond must not turn this into a busy loop.
    if (stopping) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      churnLoop();
    }, 20);
    timers.add(timer);
  });
}

function finish() {
  stopping = true;
  for (const timer of timers) clearInterval(timer);
  print({ event: 'summary', connected, failed, closedByRelay, churned, bytesFromRelay, stillOpen: sockets.size });
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

process.on('SIGTERM', finish);
setTimeout(finish, lifetime * 1000);
if (pending === 0) print({ event: 'ready', connected, failed });
for (const kind of KINDS) for (let i = 0; i < counts[kind]; i++) open(kind, i);
for (let i = 0; i < churn; i++) churnLoop();
