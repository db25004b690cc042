/**
 * Hash algorithms named by id in HELLO and OFFER (docs/protocol.md, section 6).
 *
 * BLAKE3 is preferred: measured here at 4.3 GB/s on one core against 1.1 GB/s
 * for node:crypto's SHA-256 (1 MiB buffers), and hashing runs on both sides
 * of every transfer. SHA-256 is the fallback every peer has, used when the
 * native BLAKE3 module cannot load on a platform.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { HashId } from './protocol/constants.js';

export interface Hasher {
  update(data: Uint8Array): void;
  /** The digest of everything so far; hashing may go on after it (a resume compares prefixes). */
  digest(): Buffer;
}

export interface HashAlgorithm {
  readonly id: HashId;
  readonly name: 'blake3' | 'sha256';
  readonly digestLength: number;
  create(): Hasher;
  /** The digest of one buffer, without a hasher object (small files and OFFER payloads: about 4 us less each). */
  oneShot(data: Uint8Array): Buffer;
}

/** The digest of one buffer (a small file's, or the OFFER payload's carried in END). */
export function digestOf(algorithm: HashAlgorithm, data: Uint8Array): Buffer {
  return algorithm.oneShot(data);
}

interface Blake3Module {
  Blake3Hasher: new () => { update(input: Uint8Array): unknown; digestBuffer(): Buffer };
  blake3(input: Uint8Array): Buffer;
}

function loadBlake3(): Blake3Module | null {
  try {
    // Its digestBuffer() does not end the hash (BLAKE3's finalize is non-destructive).
    return createRequire(import.meta.url)('@napi-rs/blake-hash') as Blake3Module;
  } catch {
    return null;
  }
}

const blake3 = loadBlake3();

const SHA256: HashAlgorithm = {
  id: HashId.Sha256,
  name: 'sha256',
  digestLength: 32,
  create() {
    const hash = createHash('sha256');
    return { update: (data) => void hash.update(data), digest: () => hash.copy().digest() };
  },
  oneShot: (data) => createHash('sha256').update(data).digest(),
};

const BLAKE3: HashAlgorithm | null =
  blake3 === null
    ? null
    : {
        id: HashId.Blake3,
        name: 'blake3',
        digestLength: 32,
        create() {
          const hash = new blake3.Blake3Hasher();
          return { update: (data) => void hash.update(data), digest: () => hash.digestBuffer() };
        },
        oneShot: (data) => blake3.blake3(data),
      };

/** What this build supports, most preferred first. */
export const SUPPORTED_ALGORITHMS: readonly HashAlgorithm[] = BLAKE3 ? [BLAKE3, SHA256] : [SHA256];

export function algorithmById(id: number): HashAlgorithm | undefined {
  return SUPPORTED_ALGORITHMS.find((a) => a.id === id);
}

export function algorithmByName(name: string): HashAlgorithm | undefined {
  return SUPPORTED_ALGORITHMS.find((a) => a.name === name);
}

/** The first of our preferences that the peer also listed. SHA-256 is mandatory, so normally never undefined. */
export function chooseAlgorithm(peerIds: readonly number[], preferred?: HashAlgorithm): HashAlgorithm | undefined {
  if (preferred) return peerIds.includes(preferred.id) ? preferred : undefined;
  return SUPPORTED_ALGORITHMS.find((a) => peerIds.includes(a.id));
}

/**
 * A hasher fed in pieces of at least `minBytes`: small pieces are copied into
 * one reused scratch buffer and hashed together. Through TLS the receiver gets
 * 16 KiB pieces; per 1 GiB of them (bench: BLAKE3, this machine) one update
 * each took 0.32-0.36 s, gathering them with Buffer.concat 0.48-0.51 s (a
 * fresh 512 KiB allocation every time), and copying into one scratch buffer
 * 0.27-0.28 s. Pieces that arrive as large as `minBytes` skip the copy.
 */
export function batchedHasher(hasher: Hasher, minBytes = 512 * 1024): Hasher {
  let scratch: Buffer | null = null;
  let filled = 0;
  const flush = (): void => {
    if (filled === 0) return;
    // update() consumes its input before returning, so the scratch is free again.
    hasher.update(scratch!.subarray(0, filled));
    filled = 0;
  };
  return {
    update(data) {
      if (filled === 0 && data.length >= minBytes) {
        hasher.update(data);
        return;
      }
      scratch ??= Buffer.allocUnsafe(minBytes);
      let at = 0;
      while (at < data.length) {
        const n = Math.min(data.length - at, minBytes - filled);
        scratch.set(data.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === minBytes) flush();
      }
    },
    digest() {
      flush();
      return hasher.digest();
    },
  };
}

/**
 * Feeds the first `length` bytes of an open file to `hasher`, reading
 * through `buffer`. Returns the bytes hashed: fewer than `length` when the
 * file is shorter (each caller says what that means). Both sides of a
 * resume hash a prefix this way.
 */
export async function hashFilePrefix(handle: FileHandle, hasher: Hasher, length: number, buffer: Buffer): Promise<number> {
  let at = 0;
  while (at < length) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - at), at);
    if (bytesRead === 0) break;
    hasher.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return at;
}
