#!/usr/bin/env node
// Hash throughput on one core: 1 GiB fed in 1 MiB updates, median of 3.
// What chose BLAKE3 (docs/protocol.md, section 6). Run: node bench/hashes.mjs
import { createHash, getHashes } from 'node:crypto';
import { createRequire } from 'node:module';

const { Blake3Hasher } = createRequire(import.meta.url)('@napi-rs/blake-hash');
const buffer = Buffer.alloc(1 << 20);
for (let i = 0; i < buffer.length; i++) buffer[i] = (i * 2654435761) >>> 24;
const UPDATES = 1024;

function measure(name, create) {
  const seconds = [];
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    const hash = create();
    for (let i = 0; i < UPDATES; i++) hash.update(buffer);
    hash.digest();
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  console.log(`${name.padEnd(12)} ${((UPDATES * buffer.length) / seconds[1] / 1e9).toFixed(2)} GB/s`);
}

measure('blake3', () => new Blake3Hasher());
for (const name of ['sha256', 'sha1', 'blake2b512', 'md5']) if (getHashes().includes(name)) measure(name, () => createHash(name));
