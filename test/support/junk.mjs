#!/usr/bin/env node
/**
 * Junk and idle clients for a relay: a standalone process to run inside a
 * network namespace while a real pair transfers through the same relay.
 *
 *   node junk.mjs --target HOST:PORT [--random N] [--lines N] [--trickle N]
 *                 [--allocate N] [--churn N] [--idle N] [--lifetime S]
 *
 * Opens:
 *   random    connections that send 64 KiB of random bytes, then nothing;
 *   lines     connections that send one malformed line each (a cycle of
 *             near misses of the relay's lines, an HTTP request, an overlong
 *             line, NUL bytes);
 *   trickle   connections that send a well-formed pairing line for a random
 *             room one byte every 200 ms;
 *   allocate  connections that ask for a nameplate and then wait in it;
 *   churn     loops that each send random bytes on a fresh connection, wait
 *             until the relay closes it, and start again, until the end;
 *   idle      connections that never send a byte, opened only once every
 *             other connection above has connected and every random, lines
 *             and allocate one has had its answer (or was closed), so that
 *             they do not take a per-source budget before the junk that
 *             makes the relay read.
 * Every connection is kept open until the relay closes it.
 *
 * Prints {"event":"ready","connected":{KIND:N},"failed":{KIND:N},"answers":{KIND:{LINE:N}}}
 * once every idle connection has connected or failed too; `answers` counts,
 * per kind, the first line the relay sent on each connection ("nameplate N"
 * counted as "nameplate"). On SIGTERM (or after LIFETIME seconds, default
 * 60) it prints {"event":"summary", the same fields, "closedByRelay":{KIND:N},
 * "churned":N,"bytesFromRelay":N,"stillOpen":N} and exits 0. Churn
 * connections count only in "churned", the connections the loops made.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

const KINDS = ['random', 'lines', 'trickle', 'allocate', 'idle'];
/** Kinds the relay answers at once (a refusal, or a nameplate): the idle ones wait for these answers. */
const ANSWERED = ['random', 'lines', 'allocate'];
const counts = Object.fromEntries(KINDS.map((k) => [k, 0]));
let target;
let lifetime = 60;
let churn = 0;
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
if (!target) throw new Error('usage: junk.mjs --target HOST:PORT [--random N] [--lines N] [--trickle N] [--allocate N] [--churn N] [--idle N] [--lifetime S]');

const hex = (bytes) => randomBytes(bytes).toString('hex');
const BAD_LINES = [
  'please relay zz for side 00\n',
  `please relay ${hex(32)} for side ${hex(8)} and more\n`,
  `please relay ${hex(32).toUpperCase()} for side ${hex(8)}\n`,
  `please relay ${hex(31)} for side ${hex(8)}\n`,
  'please allocate for side nothex!\n',
  'GET / HTTP/1.1\r\nHost: relay\r\n\r\n',
  'a'.repeat(4096),
  `${'\0'.repeat(64)}\n`,
  '\n',
];

const perKind = (make) => Object.fromEntries(KINDS.map((k) => [k, make()]));
const connected = perKind(() => 0);
const failed = perKind(() => 0);
const closedByRelay = perKind(() => 0);
const answers = perKind(() => ({}));
let churned = 0;
let bytesFromRelay = 0;
let stopping = false;
const sockets = new Set();
const timers = new Set();

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** Counts down to a callback: one tick per connection that settles. */
function countdown(n, then) {
  let left = n;
  if (left === 0) queueMicrotask(then);
  return () => {
    if (--left === 0) then();
  };
}

/** Opens one connection of `kind`; `settled` is called once when it connected or failed, `answered` once when it had its first line or was closed. */
function open(kind, index, settled, answered) {
  const socket = connect(target);
  sockets.add(socket);
  let isConnected = false;
  let text = '';
  let hadAnswer = false;
  const answer = (line) => {
    if (hadAnswer) return;
    hadAnswer = true;
    if (line !== undefined) {
      const key = line.replace(/ [0-9]+$/, '');
      answers[kind][key] = (answers[kind][key] ?? 0) + 1;
    }
    answered();
  };
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
  socket.on('data', (chunk) => {
    bytesFromRelay += chunk.length;
    if (hadAnswer) return;
    text += chunk.toString('latin1');
    const nl = text.indexOf('\n');
    if (nl !== -1) answer(text.slice(0, nl));
    else if (text.length > 64) answer(text.slice(0, 64));
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    sockets.delete(socket);
    if (isConnected) closedByRelay[kind]++;
    else {
      failed[kind]++;
      settled();
    }
    answer(undefined);
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
    if (stopping) return;
    // Through a timer, not at once: a relay that refuses in a microsecond must not turn this into a busy loop.
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
  print({ event: 'summary', connected, failed, answers, closedByRelay, churned, bytesFromRelay, stillOpen: sockets.size });
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

process.on('SIGTERM', finish);
setTimeout(finish, lifetime * 1000);

const early = KINDS.filter((k) => k !== 'idle');
const waitFor = early.reduce((n, k) => n + counts[k], 0) + ANSWERED.reduce((n, k) => n + counts[k], 0);
const ready = () => print({ event: 'ready', connected, failed, answers });
const openIdle = () => {
  const settled = countdown(counts.idle, ready);
  for (let i = 0; i < counts.idle; i++) open('idle', i, settled, () => undefined);
};
const tick = countdown(waitFor, openIdle);
for (const kind of early) {
  for (let i = 0; i < counts[kind]; i++) open(kind, i, tick, ANSWERED.includes(kind) ? tick : () => undefined);
}
for (let i = 0; i < churn; i++) churnLoop();
