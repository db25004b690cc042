/**
 * LAN discovery with the real CLI on a real segment: namespaces on one Linux
 * bridge (test/support/bridge.ts), `ferry receive` announcing, `ferry send`
 * with a code and no --to. Needs Linux, root and iproute2; skipped with a
 * message elsewhere. Every namespace is created and removed here, and only
 * ever carries traffic between the hosts of its own bridge.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createLan, destroyAllLans, type Lan } from './support/bridge.js';
import { listing, pattern, tempDir } from './support/files.js';
import { canUseNetns, killAll, netnsUnavailable, ourNamespaces, reapStale, type Event, type NsProcess } from './support/netns.js';

const SPOOF = fileURLToPath(new URL('./support/lan-spoof.mjs', import.meta.url));
const CODE_1 = '7-orbit-velvet-cactus';
const CODE_2 = '8-apple-banana-cherry';
/** Every process of a test ends within this (the sender listens 3 s, each try is bounded by --timeout). */
const BOUND_MS = 20_000;

if (!canUseNetns) console.warn(`lan.netns.e2e.test.ts: skipped, network namespaces are not available: ${netnsUnavailable}`);
const title = canUseNetns ? 'LAN discovery: namespaces on one bridge' : `LAN discovery: namespaces on one bridge (skipped: ${netnsUnavailable})`;

describe.skipIf(!canUseNetns)(title, () => {
  beforeAll(async () => {
    await reapStale();
  });

  afterEach(async () => {
    await killAll();
  });

  afterAll(async () => {
    await destroyAllLans();
    const left = await ourNamespaces();
    if (left.length > 0) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  });

  test('with only the code, the sender finds the right receiver and delivers a folder; an unrelated receiver gets nothing', async () => {
    const lan = await createLan(3);
    try {
      const r2Dir = await tempDir('ferry-lan-r2-');
      const r1Dir = await tempDir('ferry-lan-r1-');
      const r2 = await receiver(lan, 0, r2Dir, CODE_2, []);
      const r1 = await receiver(lan, 1, r1Dir, CODE_1, ['--once']);
      const { dir, files } = await folder();
      const started = performance.now();
      const tx = lan.ferry(2, ['send', dir, '--code', CODE_1, '--json', '--retries', '0', '--timeout', '5']);
      const txCode = await tx.exit(BOUND_MS);
      const r1Code = await r1.exit(BOUND_MS);
      const foundAt = tx.timeOf(event(tx, 'found'));
      console.log(`lan: found the receiver ${((foundAt! - started) / 1000).toFixed(2)} s after starting ferry send (process start included), done in ${((tx.exitedAt()! - started) / 1000).toFixed(2)} s`);
      expect(txCode, `sender: ${tx.stderr()} ${JSON.stringify(tx.events)}`).toBe(0);
      expect(r1Code, `receiver: ${r1.stderr()}`).toBe(0);
      expect(event(tx, 'found')).toMatchObject({ host: lan.hosts[1]!.addr, port: r1.port });
      for (const [name, content] of files) expect(await readFile(join(r1Dir, 'tree', name))).toEqual(content);
      // R2 may have been tried (one wrong code, its limiter counts it) but holds nothing, not even a partial file.
      r2.child.kill('SIGTERM');
      await r2.exit(BOUND_MS);
      expect(await listing(r2Dir)).toEqual([]);
      expect(r2.events.filter((e) => e.event === 'received' || e.event === 'start')).toEqual([]);
      for (const e of r2.events.filter((e) => e.event === 'error' && e.peer !== undefined)) expect(e.code).toBe('ERR_BAD_CODE');
    } finally {
      await lan.destroy();
    }
  }, 40_000);

  test.each([
    ['multicast alone (the receiver has no broadcast route)', 'broadcast'],
    ['the subnet broadcast alone (the switch forwards no multicast to the sender)', 'multicast'],
  ] as const)('%s is enough to find the receiver', async (_what, off) => {
    const lan = await createLan(2);
    try {
      if (off === 'broadcast') await lan.broadcastOff(0);
      else await lan.multicastOff(1);
      const dst = await tempDir('ferry-lan-dst-');
      const rx = await receiver(lan, 0, dst, CODE_1, ['--once']);
      const src = await tempDir('ferry-lan-src-');
      await writeFile(join(src, 'one.txt'), 'one path is enough\n');
      const tx = lan.ferry(1, ['send', join(src, 'one.txt'), '--code', CODE_1, '--json', '--retries', '0', '--timeout', '5']);
      // The sender first: when it fails, its own words are the ones to read.
      expect(await tx.exit(BOUND_MS), `sender: ${tx.stderr()} ${JSON.stringify(tx.events)}`).toBe(0);
      expect(await rx.exit(BOUND_MS), rx.stderr()).toBe(0);
      expect(event(tx, 'found')).toMatchObject({ host: lan.hosts[0]!.addr, port: rx.port });
      expect(await readFile(join(dst, 'one.txt'), 'utf8')).toBe('one path is enough\n');
    } finally {
      await lan.destroy();
    }
  }, 40_000);

  test('retries go back to the receiver found: killed mid-file and restarted without announcing, it gets the rest (resumed)', async () => {
    const lan = await createLan(2);
    try {
      const dst = await tempDir('ferry-lan-dst-');
      const src = await tempDir('ferry-lan-src-');
      const content = pattern(6 * 1024 * 1024, 3);
      await writeFile(join(src, 'big.bin'), content);
      // A fixed port, inside this LAN only: the restarted receiver must be where the first one was.
      const first = await receiver(lan, 0, dst, CODE_1, ['--port', '7900']);
      const tx = lan.ferry(1, ['send', join(src, 'big.bin'), '--code', CODE_1, '--json', '--limit-rate', '1M', '--retries', '6', '--retry-delay', '0.5', '--timeout', '5']);
      await first.waitFor((e) => e.event === 'progress' && (e.done as number) >= 1024 * 1024, BOUND_MS);
      first.child.kill('SIGKILL');
      await first.exit(BOUND_MS);
      // Not announcing: only the address found the first time leads to it.
      const second = await receiver(lan, 0, dst, CODE_1, ['--port', '7900', '--once', '--no-announce']);
      const [txCode, rxCode] = await Promise.all([tx.exit(30_000), second.exit(30_000)]);
      expect(txCode, `sender: ${tx.stderr()} ${JSON.stringify(tx.events.filter((e) => e.event !== 'progress'))}`).toBe(0);
      expect(rxCode, second.stderr()).toBe(0);
      expect(tx.events.filter((e) => e.event === 'found')).toEqual([{ event: 'found', host: lan.hosts[0]!.addr, port: 7900, candidates: 1 }]);
      expect(tx.events.some((e) => e.event === 'retry')).toBe(true);
      expect((event(second, 'received').resumedFrom as number) > 0).toBe(true);
      expect(await readFile(join(dst, 'big.bin'))).toEqual(content);
    } finally {
      await lan.destroy();
    }
  }, 50_000);

  test('only a receiver with another code on the LAN: a wrong code (exit 4), one guess spent there, nothing written', async () => {
    const lan = await createLan(2);
    try {
      const r2Dir = await tempDir('ferry-lan-r2-');
      const r2 = await receiver(lan, 0, r2Dir, CODE_2, []);
      const { dir } = await folder();
      const tx = lan.ferry(1, ['send', dir, '--code', CODE_1, '--json', '--retries', '0', '--timeout', '5', '--find-timeout', '2']);
      expect(await tx.exit(BOUND_MS), tx.stderr()).toBe(4);
      expect(event(tx, 'error')).toMatchObject({ code: 'ERR_BAD_CODE', exitCode: 4 });
      expect(tx.events.some((e) => e.event === 'found' || e.event === 'sent')).toBe(false);
      await r2.waitFor((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE', BOUND_MS);
      r2.child.kill('SIGTERM');
      await r2.exit(BOUND_MS);
      expect(r2.events.filter((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE')).toHaveLength(1);
      expect(await listing(r2Dir)).toEqual([]);
    } finally {
      await lan.destroy();
    }
  }, 40_000);

  test('no receiver announcing (the one there runs --no-announce): exit 5, ERR_NO_RECEIVER, within the bound', async () => {
    const lan = await createLan(2);
    try {
      const quietDir = await tempDir('ferry-lan-quiet-');
      const quiet = await receiver(lan, 0, quietDir, CODE_1, ['--no-announce']);
      const { dir } = await folder();
      const tx = lan.ferry(1, ['send', dir, '--code', CODE_1, '--json', '--retries', '0', '--find-timeout', '2']);
      expect(await tx.exit(BOUND_MS), tx.stderr()).toBe(5);
      expect(event(tx, 'error')).toMatchObject({ code: 'ERR_NO_RECEIVER', exitCode: 5 });
      expect(tx.stderr()).toMatch(/^ferry: no receiver found on the LAN/m);
      quiet.child.kill('SIGTERM');
      await quiet.exit(BOUND_MS);
      expect(quiet.events.filter((e) => e.event === 'error')).toEqual([]);
      expect(await listing(quietDir)).toEqual([]);
    } finally {
      await lan.destroy();
    }
  }, 40_000);

  test('a forged announcement: the forger gets the first handshake frame and not a byte of the file', async () => {
    const lan = await createLan(2);
    try {
      const forger = lan.spawn(0, [process.execPath, SPOOF, '--host', lan.hosts[0]!.addr, '--broadcast', broadcastOf(lan.hosts[0]!.addr), '--lifetime', '30']);
      await forger.waitFor((e) => e.event === 'listening', BOUND_MS);
      const src = await tempDir('ferry-lan-src-');
      const secret = Buffer.from(`secret-${'x'.repeat(64)}-the file content`);
      await writeFile(join(src, 'secret.txt'), secret);
      const tx = lan.ferry(1, ['send', join(src, 'secret.txt'), '--code', CODE_1, '--json', '--retries', '0', '--timeout', '2', '--find-timeout', '1']);
      expect(await tx.exit(BOUND_MS), tx.stderr()).toBe(5);
      expect(event(tx, 'error')).toMatchObject({ code: 'ERR_NO_RECEIVER' });
      const got = await forger.waitFor((e) => e.event === 'bytes', BOUND_MS);
      const bytes = Buffer.from(got.hex as string, 'hex');
      // One PAKE frame (docs/security.md, section 3: 74 bytes, type 0x0003), then silence: the forger never answered it.
      expect(bytes.subarray(0, 4).toString('hex')).toBe('c8010003');
      expect(bytes.length).toBeLessThanOrEqual(74 + 9 /* an ABORT's header and end marker, at most, with its text */ + 128);
      expect(bytes.includes(secret.subarray(0, 16))).toBe(false);
      expect(bytes.includes(Buffer.from('secret.txt'))).toBe(false);
    } finally {
      await lan.destroy();
    }
  }, 40_000);
});

/** `ferry receive --json` on all interfaces of host `i`, port 0 unless `extra` names one, announcing (the default); resolves once it listens. */
async function receiver(lan: Lan, i: number, dir: string, code: string, extra: string[]): Promise<NsProcess & { port: number }> {
  const port = extra.includes('--port') ? [] : ['--port', '0'];
  const rx = lan.ferry(i, ['receive', '--json', ...port, '--dir', dir, '--code', code, '--timeout', '5', ...extra]);
  const listening = await rx.waitFor((e) => e.event === 'listening', BOUND_MS);
  expect(listening.announcing).toBe(extra.includes('--no-announce') ? undefined : true);
  return Object.assign(rx, { port: listening.port as number });
}

/** A folder `tree` with a few files, one in a subfolder. */
async function folder(): Promise<{ dir: string; files: Map<string, Buffer> }> {
  const root = await tempDir('ferry-lan-src-');
  const dir = join(root, 'tree');
  await mkdir(join(dir, 'sub'), { recursive: true });
  const files = new Map<string, Buffer>([
    ['a.txt', Buffer.from('hello from the LAN\n')],
    ['sub/b.bin', pattern(300_000, 7)],
    ['sub/c.bin', pattern(5000, 9)],
  ]);
  for (const [name, content] of files) await writeFile(join(dir, name), content);
  return { dir, files };
}

function event(proc: NsProcess, name: string): Event {
  const found = proc.events.find((e) => e.event === name);
  if (!found) throw new Error(`no ${name} event; events: ${JSON.stringify(proc.events.filter((e) => e.event !== 'progress'))}; stderr: ${proc.stderr()}`);
  return found;
}

/** The /24's broadcast address. */
function broadcastOf(addr: string): string {
  return addr.replace(/\.\d+$/, '.255');
}
