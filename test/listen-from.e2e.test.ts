/**
 * Sender first, direct (issue 16): `send --listen` prints its address and a
 * code and serves one receiver; `receive --from HOST:PORT --code CODE` dials
 * it. The listening sender is the secure server, so strangers that connect
 * to it meet the receiver's defences: the wrong-code limiter and admission
 * (docs/security.md, sections 5 and 8).
 */
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { receive, send } from '../src/index.js';
import { toFerryError } from '../src/protocol/errors.js';
import { secureClient } from '../src/secure/index.js';
import { WORDS } from '../src/secure/words.js';
import { ferry, ferryUncoded, type FerryProcess } from './support/cli.js';
import { fingerprint, tempDir, within, writeSample } from './support/files.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

async function listeningOf(tx: FerryProcess): Promise<{ port: number; code: string }> {
  const listening = await tx.waitFor((e) => e.event === 'listening', 15_000);
  expect(listening).toMatchObject({ event: 'listening', host: '127.0.0.1', side: 'send' });
  expect(listening.port).toBeGreaterThan(0);
  return { port: listening.port as number, code: listening.code as string };
}

function wrongCode(code: string): string {
  const [number, first, ...rest] = code.split('-');
  return [number, WORDS.find((w) => w !== first)!, ...rest].join('-');
}

/** One stranger's handshake with `code` from `localAddress`: its error code, or 'OK' if it got in. */
async function strangerTry(port: number, code: string, localAddress: string, timeoutMs = 20_000): Promise<string> {
  let socket: Socket;
  try {
    socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
      s.once('error', reject);
    });
  } catch {
    // The sender is done and no longer listens.
    return 'ERR_CONNECT';
  }
  try {
    const tls = await secureClient(socket, code, { timeoutMs });
    tls.destroy();
    return 'OK';
  } catch (err) {
    return toFerryError(err).code;
  } finally {
    socket.destroy();
  }
}

describe('send --listen, receive --from', () => {
  test('a folder from a listening sender to a receiver that dials it, verified; the listening event carries host, port and code', async () => {
    const src = await tempDir('ferry-listen-src-');
    await mkdir(join(src, 'docs', 'deep'), { recursive: true });
    await writeSample(join(src, 'docs', 'deep'), 'a.bin', 2 * MiB);
    await writeSample(join(src, 'docs'), 'b.txt', 300);
    const dst = await tempDir();
    const tx = ferryUncoded(['send', join(src, 'docs'), '--listen', '--host', '127.0.0.1', '--port', '0', '--json']);
    const { port, code } = await listeningOf(tx);
    expect(code).toMatch(/^[1-9][0-9]{0,2}-[a-z]+-[a-z]+-[a-z]+$/);
    const rx = ferry(['receive', '--json', '--from', `127.0.0.1:${port}`, '--code', code, '--dir', dst]);
    expect(await rx.exit(30_000), rx.stderr()).toBe(0);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'docs', 'deep', 'a.bin')))).toEqual(fingerprint(await readFile(join(src, 'docs', 'deep', 'a.bin'))));
    expect(fingerprint(await readFile(join(dst, 'docs', 'b.txt')))).toEqual(fingerprint(await readFile(join(src, 'docs', 'b.txt'))));
    expect(tx.events.at(-1)).toMatchObject({ event: 'summary', side: 'send', files: 2, directories: 2, exitCode: 0 });
  }, 60_000);

  test('a receiver with a wrong code exits 4 and writes nothing; the listening sender serves on and the right receiver gets the file', async () => {
    const file = await writeSample(await tempDir(), 'f.bin', 100_000);
    const tx = ferryUncoded(['send', file.path, '--listen', '--host', '127.0.0.1', '--port', '0', '--json']);
    const { port, code } = await listeningOf(tx);
    const wrongDir = await tempDir();
    const wrong = ferry(['receive', '--json', '--from', `127.0.0.1:${port}`, '--code', wrongCode(code), '--dir', wrongDir]);
    expect(await wrong.exit(30_000), wrong.stderr()).toBe(4);
    expect(wrong.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE', exitCode: 4 }));
    expect(await readdir(wrongDir)).toEqual([]);
    const dst = await tempDir();
    const rx = ferry(['receive', '--json', '--from', `127.0.0.1:${port}`, '--code', code, '--dir', dst]);
    expect(await rx.exit(30_000), rx.stderr()).toBe(0);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'f.bin')))).toEqual(fingerprint(file.content));
  }, 60_000);

  test('a stranger hammering send --listen with wrong codes is rate-limited, and the right receiver still gets the file', async () => {
    const file = await writeSample(await tempDir(), 'f.bin', 200_000);
    const tx = ferryUncoded(['send', file.path, '--listen', '--host', '127.0.0.1', '--port', '0', '--json']);
    const { port, code } = await listeningOf(tx);
    // 12 wrong codes at once from another address, each giving up after 3 s: the limiter's burst is 5 and
    // its next token comes 6 s later, so 5 are tried and the rest wait, refused or timed out. Without it, 12 guesses.
    const stranger = await within(Promise.all(Array.from({ length: 12 }, () => strangerTry(port, wrongCode(code), '127.0.0.2', 3000))), 30_000, 'the first volley');
    expect(stranger).not.toContain('OK');
    expect(stranger.filter((c) => c === 'ERR_BAD_CODE').length, stranger.join(' ')).toBeLessThanOrEqual(5);
    expect(stranger.filter((c) => c === 'ERR_BAD_CODE').length, stranger.join(' ')).toBeGreaterThan(0);
    // The stranger keeps at it while the right receiver dials in.
    let hammering = true;
    const more = (async () => {
      const seen: string[] = [];
      while (hammering) seen.push(await strangerTry(port, wrongCode(code), '127.0.0.2'));
      return seen;
    })();
    const dst = await tempDir();
    const rx = ferry(['receive', '--json', '--from', `127.0.0.1:${port}`, '--code', code, '--dir', dst]);
    const rxCode = await rx.exit(45_000);
    hammering = false;
    expect(rxCode, rx.stderr()).toBe(0);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(await within(more, 30_000, 'the stranger')).not.toContain('OK');
    expect(fingerprint(await readFile(join(dst, 'f.bin')))).toEqual(fingerprint(file.content));
    // Every refused stranger was told so on the sender's side, as a receiver reports them.
    expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE' }));
  }, 90_000);

  test("a cut mid-file: receive --from dials again, the listening sender's retry takes it and resumes", async () => {
    const file = await writeSample(await tempDir(), 'big.bin', 8 * MiB);
    const dst = await tempDir();
    const tx = ferryUncoded(['send', file.path, '--listen', '--host', '127.0.0.1', '--port', '0', '--json', '--retries', '3', '--retry-delay', '0.2']);
    const { port, code } = await listeningOf(tx);
    // The receiver dials the sender through a proxy that cuts the first connection 3 MiB into the sender's data.
    const proxy = await startProxy({ host: '127.0.0.1', port }, { cutAfterReverse: 3 * MiB, onlyFirst: 1 });
    try {
      const rx = ferry(['receive', '--json', '--from', `127.0.0.1:${proxy.port}`, '--code', code, '--dir', dst]);
      expect(await rx.exit(60_000), rx.stderr()).toBe(0);
      expect(await tx.exit(15_000), tx.stderr()).toBe(0);
      expect(tx.events).toContainEqual(expect.objectContaining({ event: 'retry', attempt: 1 }));
      const sent = tx.events.find((e) => e.event === 'sent' && e.name === 'big.bin');
      expect(sent?.resumedFrom as number).toBeGreaterThan(0);
      expect(fingerprint(await readFile(join(dst, 'big.bin')))).toEqual(fingerprint(file.content));
    } finally {
      await proxy.close();
    }
  }, 90_000);

  test('the library: send({ listen }) and receive({ from }), typed as the CLI options', async () => {
    const file = await writeSample(await tempDir(), 'lib.bin', 1 * MiB);
    const dst = await tempDir();
    let resolveListening!: (e: { port: number; code: string }) => void;
    const listening = new Promise<{ port: number; code: string }>((resolve) => (resolveListening = resolve));
    const sending = send({
      files: [file.path],
      listen: { host: '127.0.0.1', port: 0 },
      onEvent: (e) => {
        if (e.event === 'listening' && 'port' in e && e.code !== undefined) resolveListening({ port: e.port, code: e.code });
      },
    });
    const { port, code } = await within(listening, 15_000, 'listening');
    const rx = await receive({ dir: dst, from: { host: '127.0.0.1', port }, code });
    expect(await within(rx.done, 30_000, 'the receiver')).toBe(0);
    const summary = await within(sending, 15_000, 'the sender');
    expect(summary.exitCode).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'lib.bin')))).toEqual(fingerprint(file.content));
  }, 60_000);
});
