#!/usr/bin/env node
// What the secure channel costs: SIZE_MB (default 1024) pushed over loopback
// from this process to a child process, as plain TCP, through ferry's own
// secure handshake (secureClient/secureServer, default cipher order), and
// through node's TLS 1.3 with the same PSK settings forced to each SHA-256
// suite. Prints MB/s per mode (best of RUNS, default 2), measured from the
// first byte written to the child having read the last one.
// Run after `npm run build`: node bench/tls.mjs [SIZE_MB] [RUNS]
// (FERRY_DIST=dir points it at another build of src/).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';

const dist = process.env.FERRY_DIST ? pathToFileURL(`${process.env.FERRY_DIST}/`) : new URL('../dist/', import.meta.url);
const { CodeGuard, secureClient, secureServer, TLS_CIPHERS } = await import(new URL('secure/index.js', dist).href);

const CODE = '7-orbit-velvet-cactus';
const MODES = ['plain', 'ferry', 'TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256'];
const PSK = Buffer.alloc(32, 7);
const tlsSettings = (cipher) => ({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: cipher });
const TIMEOUT_MS = 300_000;

if (process.argv[2] === '--child') await child(process.argv[3]);
else await parent(Number(process.argv[2] ?? 1024) * 1024 * 1024, Number(process.argv[3] ?? 2));

/** Receiving side: accept one connection, secure it as `mode` says, count bytes to the end. */
async function child(mode) {
  const server = createServer(async (raw) => {
    server.close();
    let socket = raw;
    if (mode === 'ferry') {
      socket = await secureServer(raw, new CodeGuard(CODE), { timeoutMs: 30_000 });
    } else if (mode !== 'plain') {
      const tlsServer = tls.createServer({ ...tlsSettings(mode), pskCallback: () => PSK });
      socket = await new Promise((resolve) => {
        tlsServer.once('secureConnection', resolve);
        tlsServer.emit('connection', raw);
      });
    }
    let bytes = 0;
    socket.on('data', (chunk) => (bytes += chunk.length));
    socket.on('end', () => {
      process.send({ bytes, cipher: socket.getCipher?.().name ?? 'none' });
      socket.end();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

/** One transfer of `size` bytes in `mode`; resolves with MB/s and the cipher used. */
async function transfer(mode, size, block) {
  const receiver = fork(new URL(import.meta.url).pathname, ['--child', mode], { env: process.env });
  const timer = setTimeout(() => receiver.kill(), TIMEOUT_MS);
  try {
    const port = await new Promise((resolve) => receiver.once('message', (m) => resolve(m.port)));
    const raw = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    let socket = raw;
    if (mode === 'ferry') socket = await secureClient(raw, CODE, { timeoutMs: 30_000 });
    else if (mode !== 'plain') {
      socket = tls.connect({ socket: raw, ...tlsSettings(mode), servername: '', pskCallback: () => ({ psk: PSK, identity: 'ferry' }) });
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    }
    const done = new Promise((resolve) => receiver.once('message', resolve));
    const start = performance.now();
    for (let sent = 0; sent < size; sent += block.length) {
      if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    socket.end();
    const result = await done;
    const seconds = (performance.now() - start) / 1000;
    if (result.bytes !== size) throw new Error(`${mode}: child got ${result.bytes} of ${size} bytes`);
    return { mbps: size / 1e6 / seconds, cipher: result.cipher };
  } finally {
    clearTimeout(timer);
    receiver.kill();
  }
}

async function parent(size, runs) {
  const block = randomBytes(1024 * 1024);
  const best = new Map();
  console.error(`${size / 2 ** 20} MiB per run, best of ${runs}; ferry's cipher order: ${TLS_CIPHERS}`);
  for (let run = 0; run < runs; run++) {
    for (const mode of MODES) {
      const { mbps, cipher } = await transfer(mode, size, block);
      console.error(`run ${run + 1} ${mode.padEnd(29)} ${mbps.toFixed(0).padStart(6)} MB/s (${cipher})`);
      if (!best.has(mode) || best.get(mode).mbps < mbps) best.set(mode, { mbps, cipher });
    }
  }
  const plain = best.get('plain').mbps;
  console.log('mode                          cipher                          MB/s   vs plain');
  for (const [mode, { mbps, cipher }] of best) {
    console.log(`${mode.padEnd(29)} ${cipher.padEnd(30)} ${mbps.toFixed(0).padStart(6)}   ${((mbps / plain) * 100).toFixed(0)}%`);
  }
}
