#!/usr/bin/env node
// Two (or more) builds of ferry on one file over loopback, alternated run by
// run, so that a shared, noisy machine affects them alike. Per build and
// mode: MB/s end to end (sender start to both exits), MB/s of the data
// phase (the receiver's own `received` seconds), CPU s (user+sys, GNU time)
// and peak RSS of each side. Nothing here asserts a time.
//
//   node bench/ab.mjs RUNS MODES BUILDS [FILE]
//   node bench/ab.mjs 3 enc,enc-nf,plain-nf /tmp/ferry-before,. /tmp/1g.bin
//
// MODES: enc (default flags), enc-nf (receiver --no-fsync), plain (--insecure),
// plain-nf. BUILDS: directories holding dist/ferry.mjs (a copied dist/ needs
// node_modules beside it, or BLAKE3 falls back to SHA-256). FILE: default a
// 1 GiB file of random bytes made once in the temp dir.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const [runs = '3', modes = 'enc-nf,plain-nf', builds = '.', given] = process.argv.slice(2);
const work = mkdtempSync(join(tmpdir(), 'ferry-ab-'));
const file = given ?? join(tmpdir(), 'ferry-ab-1g.bin');
if (!existsSync(file)) {
  const fd = openSync(file, 'w');
  for (let i = 0; i < 1024; i++) writeSync(fd, randomBytes(1024 * 1024));
  closeSync(fd);
}
const size = statSync(file).size;
let count = 0;

function launch(argv, withStdout) {
  const usage = join(work, `usage-${++count}.txt`);
  const child = spawn('/usr/bin/time', ['-q', '-o', usage, '-f', '%U %S %M', process.execPath, ...argv], { stdio: ['ignore', withStdout ? 'pipe' : 'ignore', 'inherit'] });
  const exit = new Promise((done) => child.on('exit', (code) => done(code)));
  const cost = () => {
    const [user, sys, kib] = readFileSync(usage, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    return { cpu: user + sys, rss: Math.round(kib / 1024) };
  };
  return { child, exit, cost };
}

async function once(build, mode) {
  const dst = join(work, 'dst');
  rmSync(dst, { recursive: true, force: true });
  mkdirSync(dst);
  const security = mode.startsWith('plain') ? ['--insecure'] : ['--code', '7-orbit-velvet-cactus'];
  const fsync = mode.endsWith('-nf') ? ['--no-fsync'] : [];
  const cli = join(resolve(build), 'dist', 'ferry.mjs');
  const rx = launch([cli, 'receive', '--dir', dst, '--host', '127.0.0.1', '--port', '0', '--once', '--json', ...security, ...fsync], true);
  let dataSeconds = NaN;
  const port = await new Promise((done, fail) => {
    rx.exit.then(() => fail(new Error(`${build}: receiver exited before listening`)));
    createInterface({ input: rx.child.stdout }).on('line', (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event.event === 'listening') done(event.port);
      if (event.event === 'received') dataSeconds = event.seconds;
    });
  });
  const started = performance.now();
  const tx = launch([cli, 'send', file, '--to', `127.0.0.1:${port}`, '-q', ...security], false);
  const codes = await Promise.all([tx.exit, rx.exit]);
  const seconds = (performance.now() - started) / 1000;
  if (codes.some((c) => c !== 0)) throw new Error(`${build} ${mode}: exit codes ${codes.join(', ')}`);
  const send = tx.cost();
  const recv = rx.cost();
  return { rate: size / 1e6 / seconds, data: size / 1e6 / dataSeconds, sendCpu: send.cpu, recvCpu: recv.cpu, sendRss: send.rss, recvRss: recv.rss };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = new Map();
for (let i = 0; i < Number(runs); i++) {
  for (const mode of modes.split(',')) {
    for (const build of builds.split(',')) {
      const r = await once(build, mode);
      const key = `${mode} ${build}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      console.error(`${key}: ${r.rate.toFixed(0)} MB/s (data ${r.data.toFixed(0)}), CPU send ${r.sendCpu.toFixed(2)} recv ${r.recvCpu.toFixed(2)} s, RSS send ${r.sendRss} recv ${r.recvRss} MiB`);
    }
  }
}
console.log('mode build'.padEnd(40), 'MB/s', 'data', 'sendCPU', 'recvCPU', 'sendRSS(max)', 'recvRSS(max)');
for (const [key, rs] of results) {
  const m = (f) => median(rs.map(f));
  console.log(key.padEnd(40), m((r) => r.rate).toFixed(0), m((r) => r.data).toFixed(0), m((r) => r.sendCpu).toFixed(2), m((r) => r.recvCpu).toFixed(2), Math.max(...rs.map((r) => r.sendRss)), Math.max(...rs.map((r) => r.recvRss)));
}
rmSync(work, { recursive: true, force: true });
