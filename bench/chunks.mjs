#!/usr/bin/env node
// ferry's throughput by DATA chunk size: 1 GiB over loopback, --no-fsync,
// one warm-up round then 3 counted, sizes alternating. What chose 1 MiB.
// Run after `npm run build`: node bench/chunks.mjs [SIZE_MB]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../dist/ferry.mjs', import.meta.url));
const SIZE = Number(process.argv[2] ?? 1024) * 1024 * 1024;
const CHUNKS = [64 << 10, 256 << 10, 1 << 20, 4 << 20];
const work = mkdtempSync(join(tmpdir(), 'ferry-chunks-'));
const source = join(work, 'source.bin');
const fd = openSync(source, 'w');
for (let written = 0; written < SIZE; written += 16 << 20) writeSync(fd, randomBytes(Math.min(16 << 20, SIZE - written)));
closeSync(fd);

/** One transfer; resolves with MB/s from starting the sender to both exited. */
function transfer(chunk) {
  const out = join(work, 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('transfer took over 120 s')), 120_000);
    const receiver = spawn(process.execPath, [CLI, 'receive', '--dir', out, '--host', '127.0.0.1', '--port', '0', '--once', '--json', '--no-fsync']);
    receiver.stdout.once('data', (line) => {
      const { port } = JSON.parse(String(line).split('\n')[0]);
      const start = performance.now();
      const sender = spawn(process.execPath, [CLI, 'send', source, '--to', `127.0.0.1:${port}`, '-q', '--chunk-size', String(chunk)]);
      let exited = 0;
      const onExit = (who) => (code) => {
        if (code !== 0) return reject(new Error(`${who} exited ${code}`));
        if (++exited === 2) {
          clearTimeout(timer);
          resolve(SIZE / 1e6 / ((performance.now() - start) / 1000));
        }
      };
      sender.on('exit', onExit('send'));
      receiver.on('exit', onExit('receive'));
    });
  });
}

try {
  const rates = new Map(CHUNKS.map((c) => [c, []]));
  for (let round = 0; round < 4; round++) {
    for (const chunk of CHUNKS) {
      const rate = await transfer(chunk);
      if (round > 0) rates.get(chunk).push(rate);
    }
  }
  for (const [chunk, list] of rates) {
    list.sort((a, b) => a - b);
    console.log(`chunk ${String(chunk / 1024).padStart(5)} KiB: median ${list[1].toFixed(0)} MB/s (min ${list[0].toFixed(0)}, max ${list[2].toFixed(0)})`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
