/**
 * Through a relay, with the real CLI on both sides (issue 16): the receiver
 * first (`receive --relay` prints the code, `send --relay --code` delivers)
 * and the sender first (`send --relay` prints the code, `receive --relay
 * --code` fetches), a folder, standard input to standard output, a wrong
 * code, and a sender's retry resuming through the relay after its
 * connection was cut. Each runs through ferry's relay and through the
 * magic-wormhole transit relay (Debian's, an independent implementation of
 * the pairing line).
 */
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { startRelay } from '../src/relay/server.js';
import { WRONG_CODES_GOING_FIRST } from '../src/sender/link.js';
import { WORDS } from '../src/secure/words.js';
import { ferry, ferryUncoded, type FerryProcess } from './support/cli.js';
import { fingerprint, pattern, tempDir, writeSample } from './support/files.js';
import { startProxy } from './support/proxy.js';
import { startTransitRelay } from './support/transit-relay.js';

const MiB = 1024 * 1024;
type Json = Record<string, unknown>;

interface Relay {
  port: number;
  kill(): Promise<void>;
}

/**
 * The transit relay runs wherever twist3 is installed, and always in CI
 * (.ci/run installs it; missing there, these tests fail rather than skip).
 */
const HAVE_TRANSIT = process.env.CI !== undefined || spawnSync('twist3', ['--version'], { stdio: 'ignore' }).status === 0;

/** Each relay, started on 127.0.0.1 at `port` (0: the OS chooses). */
const RELAYS: Array<[string, (port?: number) => Promise<Relay>]> = [
  [
    "ferry's relay (startRelay)",
    async (port) => {
      const relay = await startRelay({ host: '127.0.0.1', port: port ?? 0 });
      return { port: relay.port, kill: () => relay.close() };
    },
  ],
  ...(HAVE_TRANSIT ? [['the transit relay (twist3)', (port?: number) => startTransitRelay(port)] as [string, (port?: number) => Promise<Relay>]] : []),
];

/** Every file under `dir` (relative path → fingerprint) and every folder, for comparing trees. */
async function tree(dir: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) {
        out[`${relative(dir, path)}/`] = true;
        await walk(path);
      } else {
        out[relative(dir, path)] = { ...fingerprint(await readFile(path)), mode: (await stat(path)).mode & 0o777 };
      }
    }
  };
  await walk(dir);
  return out;
}

/** A folder with a nested tree, an empty folder, a small and a large file. */
async function sampleFolder(): Promise<string> {
  const root = await tempDir('ferry-relay-src-');
  const top = join(root, 'photos');
  await mkdir(join(top, '2024', 'empty'), { recursive: true });
  await writeSample(top, 'a.txt', 1000);
  await writeSample(join(top, '2024'), 'big.bin', 3 * MiB);
  return top;
}

async function codeOf(proc: FerryProcess, side: 'send' | 'receive', relay: string): Promise<string> {
  const listening = await proc.waitFor((e) => e.event === 'listening', 15_000);
  expect(listening).toMatchObject({ relay, side });
  const code = listening.code as string;
  // The number is the room's (1..9999, public to the relay); the words are the secret.
  expect(code).toMatch(/^[1-9][0-9]{0,3}-[a-z]+-[a-z]+-[a-z]+$/);
  return code;
}

/** The right room (the number is public to the relay), the wrong words. */
function wrongWords(code: string): string {
  const [number, first, ...rest] = code.split('-');
  return [number, WORDS.find((w) => w !== first)!, ...rest].join('-');
}

/** The sender exits 0 after at least one retry, its file resumed from at least `from` bytes, and it arrived whole. */
async function expectResumed(tx: FerryProcess, saved: string, content: Buffer, from: number): Promise<void> {
  expect(await tx.exit(60_000), tx.stderr()).toBe(0);
  expect(tx.events).toContainEqual(expect.objectContaining({ event: 'retry', attempt: 1 }));
  const sent = tx.events.find((e: Json) => e.event === 'sent');
  expect(sent?.resumedFrom as number).toBeGreaterThanOrEqual(from);
  expect(fingerprint(await readFile(saved))).toEqual(fingerprint(content));
}

describe.each(RELAYS)('through %s', (_name, startRelay) => {
  test('receiver first: receive --relay prints a code, send --relay --code delivers a folder and a file, verified', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const folder = await sampleFolder();
    const single = await writeSample(await tempDir(), 'notes.md', 5000);
    const rx = ferryUncoded(['receive', '--json', '--relay', at, '--dir', dst, '--once']);
    const code = await codeOf(rx, 'receive', at);
    const tx = ferry(['send', folder, single.path, '--relay', at, '--json'], { FERRY_CODE: code });
    expect(await tx.exit(30_000), tx.stderr()).toBe(0);
    expect(await rx.exit(15_000), rx.stderr()).toBe(0);
    expect(await tree(join(dst, 'photos'))).toEqual(await tree(folder));
    expect(fingerprint(await readFile(join(dst, 'notes.md')))).toEqual(fingerprint(single.content));
    expect(tx.events.filter((e) => e.event === 'sent').map((e) => e.name)).toContain('photos/2024/big.bin');
  }, 60_000);

  test('sender first: send --relay prints a code and waits; receive --relay --code fetches and exits when that sender is done', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'report.pdf', 2 * MiB + 17);
    const tx = ferryUncoded(['send', file.path, '--relay', at, '--json']);
    const code = await codeOf(tx, 'send', at);
    const rx = ferry(['receive', '--json', '--relay', at, '--code', code, '--dir', dst]);
    expect(await rx.exit(30_000), rx.stderr()).toBe(0);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'report.pdf')))).toEqual(fingerprint(file.content));
    // A fetch waits for nobody else: it announces no room of its own.
    expect(rx.events.filter((e) => e.event === 'listening')).toEqual([]);
    expect(rx.events.at(-1)).toMatchObject({ event: 'summary', side: 'receive', files: 1, exitCode: 0 });
  }, 60_000);

  test('standard input to standard output through the relay', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const data = pattern(3 * MiB + 5, 9);
    const rx = ferryUncoded(['receive', '--json', '--relay', at, '--stdout'], {}, { rawStdout: true });
    const code = await codeOf(rx, 'receive', at);
    const tx = ferry(['send', '-', '--name', 'stream.bin', '--relay', at, '--json'], { FERRY_CODE: code }, { stdin: 'pipe' });
    tx.child.stdin!.end(data);
    expect(await tx.exit(30_000), tx.stderr()).toBe(0);
    expect(await rx.exit(15_000), rx.stderr()).toBe(0);
    expect(fingerprint(rx.stdoutBytes())).toEqual(fingerprint(data));
  }, 60_000);

  test('a wrong code through the relay, sender first: the receiver exits 4 (ERR_BAD_CODE), nothing is written; the sender waits on and the right code then fetches', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'secret.txt', 4096);
    const tx = ferryUncoded(['send', file.path, '--relay', at, '--json']);
    const code = await codeOf(tx, 'send', at);
    const rx = ferry(['receive', '--json', '--relay', at, '--code', wrongWords(code), '--dir', dst]);
    expect(await rx.exit(30_000), rx.stderr()).toBe(4);
    expect(rx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE', exitCode: 4 }));
    await tx.waitFor((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE', 15_000);
    expect(await readdir(dst)).toEqual([]);
    const right = ferry(['receive', '--json', '--relay', at, '--code', code, '--dir', dst]);
    expect(await right.exit(30_000), right.stderr()).toBe(0);
    expect(await tx.exit(15_000), tx.stderr()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'secret.txt')))).toEqual(fingerprint(file.content));
  }, 60_000);

  test(`a sender first ends at its ${WRONG_CODES_GOING_FIRST}th wrong code (exit 4), having sent nothing`, async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'secret.txt', 4096);
    const tx = ferryUncoded(['send', file.path, '--relay', at, '--json']);
    const code = await codeOf(tx, 'send', at);
    for (let i = 0; i < WRONG_CODES_GOING_FIRST; i++) {
      const rx = ferry(['receive', '--json', '--relay', at, '--code', wrongWords(code), '--dir', dst]);
      expect(await rx.exit(30_000), rx.stderr()).toBe(4);
    }
    expect(await tx.exit(15_000), tx.stderr()).toBe(4);
    expect(tx.events.filter((e: Json) => e.event === 'error' && e.code === 'ERR_BAD_CODE')).toHaveLength(WRONG_CODES_GOING_FIRST);
    expect(await readdir(dst)).toEqual([]);
  }, 90_000);

  test('three senders at once to one receiver: each is paired in turn (a seat the relay drops unpaired is taken again), all delivered', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const src = await tempDir();
    const files = await Promise.all([1, 2, 3].map((n) => writeSample(src, `f${n}.bin`, n * 300_000)));
    const rx = ferryUncoded(['receive', '--json', '--relay', at, '--dir', dst]);
    const code = await codeOf(rx, 'receive', at);
    const senders = files.map((f) => ferry(['send', f.path, '--relay', at, '--json'], { FERRY_CODE: code }));
    for (const tx of senders) expect(await tx.exit(60_000), tx.stderr()).toBe(0);
    for (const f of files) expect(fingerprint(await readFile(join(dst, f.path.split('/').at(-1)!)))).toEqual(fingerprint(f.content));
    rx.child.kill('SIGINT');
    expect(await rx.exit(15_000)).toBe(130);
  }, 90_000);

  test("a sender's connection cut mid-file: its retry joins the same room and resumes", async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'big.bin', 8 * MiB);
    const rx = ferryUncoded(['receive', '--json', '--relay', at, '--dir', dst]);
    const code = await codeOf(rx, 'receive', at);
    // The sender reaches the relay through a proxy that cuts its first connection 3 MiB in.
    const proxy = await startProxy({ host: '127.0.0.1', port: relay.port }, { cutAfter: 3 * MiB, onlyFirst: 1 });
    try {
      const tx = ferry(['send', file.path, '--relay', `127.0.0.1:${proxy.port}`, '--json', '--retries', '3', '--retry-delay', '0.2'], { FERRY_CODE: code });
      await expectResumed(tx, join(dst, 'big.bin'), file.content, 1);
    } finally {
      await proxy.close();
    }
    rx.child.kill('SIGINT');
    expect(await rx.exit(15_000)).toBe(130);
  }, 90_000);

  test('sender first, the relay killed mid-transfer and started again: the fetching receiver takes a new seat, the sender retries, and the file resumes', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'big.bin', 6 * MiB);
    const tx = ferryUncoded(['send', file.path, '--relay', at, '--json', '--limit-rate', '2M', '--retries', '8', '--retry-delay', '0.2']);
    const code = await codeOf(tx, 'send', at);
    const rx = ferry(['receive', '--json', '--relay', at, '--code', code, '--dir', dst]);
    await rx.waitFor((e) => e.event === 'progress' && (e.done as number) >= MiB, 30_000);
    await relay.kill();
    const again = await startRelay(relay.port);
    try {
      await expectResumed(tx, join(dst, 'big.bin'), file.content, MiB);
      // The receiver ends with its sender, as it would have without the cut.
      expect(await rx.exit(15_000), rx.stderr()).toBe(0);
    } finally {
      await again.kill();
    }
  }, 90_000);

  test('the relay killed mid-transfer and started again: the receiver re-dials into its room, the sender retries, and the file resumes', async () => {
    const relay = await startRelay();
    const at = `127.0.0.1:${relay.port}`;
    const dst = await tempDir();
    const file = await writeSample(await tempDir(), 'big.bin', 6 * MiB);
    const rx = ferryUncoded(['receive', '--json', '--relay', at, '--dir', dst]);
    const code = await codeOf(rx, 'receive', at);
    const tx = ferry(['send', file.path, '--relay', at, '--json', '--limit-rate', '2M', '--retries', '8', '--retry-delay', '0.2'], { FERRY_CODE: code });
    await rx.waitFor((e) => e.event === 'progress' && (e.done as number) >= MiB, 30_000);
    await relay.kill();
    const again = await startRelay(relay.port);
    try {
      await expectResumed(tx, join(dst, 'big.bin'), file.content, MiB);
    } finally {
      rx.child.kill('SIGINT');
      expect(await rx.exit(15_000)).toBe(130);
      await again.kill();
    }
  }, 90_000);
});

test('a relay that answers something else: exit 6 (ERR_RELAY), one line in ferry\'s words, nothing of its answer shown', async () => {
  const junk = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.write('HTTP/1.1 400 \u001b[2Jgo away\r\n'));
  });
  await new Promise<void>((resolve) => junk.listen(0, '127.0.0.1', resolve));
  try {
    const at = `127.0.0.1:${(junk.address() as AddressInfo).port}`;
    for (const args of [['receive', '--relay', at, '--dir', await tempDir()], ['send', __filename, '--relay', at]]) {
      const proc = ferryUncoded([...args, '--json']);
      expect(await proc.exit(15_000), proc.stderr()).toBe(6);
      expect(proc.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_RELAY', exitCode: 6 }));
      const stderr = proc.stderr();
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).not.toMatch(/HTTP|go away|\u001b/);
    }
  } finally {
    await new Promise((resolve) => junk.close(resolve));
  }
}, 60_000);
