#!/usr/bin/env node
// Pre-authentication costs on the receiver (docs/security.md, section 8):
// receiver CPU per refused PAKE share. Measurements only: nothing asserts.
//
//   npm run build && node bench/preauth.mjs [FRAMES] [CONCURRENCY]
//
// Starts `ferry receive` (dist/ferry.mjs, or FERRY_CLI=path) as a child on
// loopback, sends FRAMES PAKE frames whose share is off the curve, one per
// connection, CONCURRENCY connections at a time, waits for each to be
// answered or closed, and reads the child's CPU time (user + system) from
// /proc before and after. A connection that waits for a limiter token is
// answered later; every wait is bounded.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const frames = Number(process.argv[2] ?? 1000);
const concurrency = Number(process.argv[3] ?? 8);
const cli = process.env.FERRY_CLI ?? fileURLToPath(new URL('../dist/ferry.mjs', import.meta.url));
const CODE = '7-orbit-velvet-cactus';
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

// A PAKE frame (docs/protocol.md, section 2): C8 01, type 0x0003, length 65, payload, C9.
// The payload is 04 || x || y with y chosen so the point is not on P-256.
function junkFrame(i) {
  const payload = Buffer.alloc(65, 0x11);
  payload[0] = 0x04;
  payload.writeUInt32BE(i, 1);
  const header = Buffer.from([0xc8, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x41]);
  return Buffer.concat([header, payload, Buffer.from([0xc9])]);
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

function startReceiver() {
  const child = spawn(process.execPath, [cli, 'receive', '--json', '--host', '127.0.0.1', '--port', '0', '--dir', tmpdir(), '--code', CODE], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('receiver did not start within 10 s')), 10_000);
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      text += chunk;
      const line = text.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, port: JSON.parse(line).port });
      }
    });
  });
}

function oneJunk(port, i) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => (socket.destroy(), resolve('timeout')), 30_000);
    const done = (how) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(how);
    };
    socket.on('error', () => done('error'));
    socket.on('connect', () => socket.write(junkFrame(i)));
    socket.once('data', () => done('answered'));
    socket.on('close', () => done('closed'));
  });
}

const { child, port } = await startReceiver();
// Let start-up (scrypt of the code, JIT warm-up) finish before measuring.
await Promise.all(Array.from({ length: 10 }, (_, i) => oneJunk(port, i)));
const before = cpuSeconds(child.pid);
const started = performance.now();
const outcomes = {};
let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < frames) {
      const how = await oneJunk(port, next++);
      outcomes[how] = (outcomes[how] ?? 0) + 1;
    }
  }),
);
const cpu = cpuSeconds(child.pid) - before;
const wall = (performance.now() - started) / 1000;
child.kill('SIGINT');
console.log(
  JSON.stringify({
    frames,
    concurrency,
    receiverCpuSeconds: cpu,
    cpuMsPerJunkShare: (cpu * 1000) / frames,
    wallSeconds: Number(wall.toFixed(3)),
    outcomes,
    note: 'CPU includes accepting and closing each connection, not just the share check',
  }),
);
