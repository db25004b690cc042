#!/usr/bin/env node
// A real transfer on this machine: a receiver on loopback, a 256 MiB sample
// file sent to it (with the progress bar when this is a terminal), verified,
// and the copy checked once more with SHA-256 here. Exits non-zero on failure.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/ferry.mjs', import.meta.url));
const SIZE = 256 * 1024 * 1024;
const work = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
const inbox = join(work, 'inbox');
await mkdir(inbox);
const sample = join(work, 'sample.bin');

const sha256 = (path) =>
  new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path).on('data', (d) => hash.update(d)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
  });

const exited = (child) => new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));

let status = 1;
const receiver = spawn(process.execPath, [cli, 'receive', '--host', '127.0.0.1', '--port', '0', '--once', '--json', '--dir', inbox], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const file = await open(sample, 'w');
  for (let written = 0; written < SIZE; written += 16 << 20) await file.write(randomBytes(16 << 20));
  await file.close();

  // The receiver prints its port (chosen by the OS) and its fresh one-time code as its first JSON line.
  const { port, code } = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the receiver did not start within 10 s')), 10_000);
    let buffer = '';
    receiver.stdout.setEncoding('utf8').on('data', (text) => {
      buffer += text;
      for (const line of buffer.split('\n').slice(0, -1)) {
        const event = JSON.parse(line);
        if (event.event === 'listening') {
          clearTimeout(timer);
          resolve({ port: event.port, code: event.code });
        }
        if (event.event === 'received') console.log(`demo: the receiver saved ${event.path} (${event.hash.algorithm} ${event.hash.digest})`);
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
    });
  });
  console.log(`demo: receiver listening on 127.0.0.1 port ${port} with the one-time code ${code}; sending a 256 MiB file, encrypted`);
  // The code goes in the environment, not argv, where other local users could read it.
  console.log(`demo: $ FERRY_CODE=${code} ferry send ${sample} --to 127.0.0.1:${port}`);
  const sender = spawn(process.execPath, [cli, 'send', sample, '--to', `127.0.0.1:${port}`], { stdio: 'inherit', env: { ...process.env, FERRY_CODE: code } });
  const [sent, received] = await Promise.all([exited(sender), exited(receiver)]);
  const [before, after] = await Promise.all([sha256(sample), sha256(join(inbox, 'sample.bin'))]);
  if (sent === 0 && received === 0 && before === after) {
    console.log(`demo: verified: both sides exited 0 and the copy's SHA-256 matches (${after})`);
    status = 0;
  } else {
    console.error(`demo: FAILED: sender exit ${sent}, receiver exit ${received}, sha256 ${before} vs ${after}`);
  }
} catch (err) {
  console.error(`demo: FAILED: ${err.message}`);
} finally {
  receiver.kill();
  await rm(work, { recursive: true, force: true });
}
process.exit(status);
