/**
 * The relay's promises end to end (issue 16), with the real CLI: `ferry
 * relay` on a host R, clients on hosts A and B that reach R but not each
 * other (test/support/star.ts), so every byte between them went through the
 * relay. Receiver first and sender first, through ferry's relay and through
 * Debian's magic-wormhole-transit-relay; a folder that resumes after the
 * relay is killed and restarted; 20 pairs at once, none crossed; a wrong
 * code; junk and idle connections beside a real pair. On loopback, with no
 * namespace: a recording proxy in front of the relay that must see neither a
 * name, nor content, nor the code; a relay that flips a byte; and the
 * suite's helpers cleaning up.
 *
 * The namespace part needs Linux, root and iproute2 (CI runs as root) and is
 * skipped with a message elsewhere. Every wait is bounded by a JSON event,
 * an exit or a connect with a deadline; nothing sleeps to synchronise.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { RELAY_BAD, parseRelayRequest, roomToken } from '../src/relay/wire.js';
import { WORDS } from '../src/secure/words.js';
import { withRetryDefault } from './support/cli.js';
import { listing, pattern, sha256, tempDir, visible, within } from './support/files.js';
import { CLI, canUseNetns, killAll, netnsUnavailable, ourNamespaces, reapStale, type Event, type NsProcess } from './support/netns.js';
import { spawnJson, type JsonProcess } from './support/process.js';
import { startProxy } from './support/proxy.js';
import { leaks, startRecorder } from './support/recorder.js';
import { JUNK, RELAY_HOST, createStar, destroyStars, type Star } from './support/star.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** A code as the relay hands it out: a nameplate, then three list words. */
const CODE = /^[1-9][0-9]{0,3}(-[a-z]+){3}$/;

/**
 * The transit relay runs wherever twist3 is installed, and always in CI (.ci/run installs it;
 * missing there, its tests fail rather than skip), as in relay-modes.e2e.test.ts.
 */
const HAVE_TRANSIT = process.env.CI !== undefined || spawnSync('twist3', ['--version'], { stdio: 'ignore' }).status === 0;

/** The relays the receiver-first and sender-first tests run through: ferry's own, and Debian's magic-wormhole-transit-relay. */
const RELAYS: Array<[string, (on: Star) => Promise<Relay>]> = [
  ['ferry relay', (on) => startRelay(on)],
  ...(HAVE_TRANSIT ? [['the transit relay (twist3)', startTransit] as [string, (on: Star) => Promise<Relay>]] : []),
];

if (!canUseNetns) console.warn(`relay.netns.e2e.test.ts: the namespace tests are skipped, network namespaces are not available: ${netnsUnavailable}`);

const title = canUseNetns ? 'ferry through a relay: hosts A and B reach R, not each other' : `ferry through a relay in network namespaces (skipped: ${netnsUnavailable})`;

describe.skipIf(!canUseNetns)(title, () => {
  let star: Star;

  beforeAll(async () => {
    const reaped = await reapStale();
    if (reaped.length > 0) console.log(`relay netns: removed ${reaped.length} namespace(s) left by dead runs: ${reaped.join(', ')}`);
    // A and B run the pairs, J and K the junk.
    star = await createStar(['a', 'b', 'j', 'k']);
  });

  afterEach(async () => {
    await killAll();
  });

  afterAll(async () => {
    await destroyStars();
    const left = await ourNamespaces();
    if (left.length > 0) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  });

  test('the topology: A and B reach a listener on R, a listener on B is reachable from R but not from A (and A not from B)', async () => {
    const onR = await star.listen(RELAY_HOST);
    const onA = await star.listen('a');
    const onB = await star.listen('b');
    expect(await star.connect('a', star.relay.addr, onR.port, 5000)).toEqual({ event: 'connected', greeting: RELAY_HOST });
    expect(await star.connect('b', star.relay.addr, onR.port, 5000)).toEqual({ event: 'connected', greeting: RELAY_HOST });
    // The leaves' listeners are up and reachable (from R), so what fails below fails for the topology alone.
    expect(await star.connect(RELAY_HOST, star.leaves.b!.addr, onB.port, 5000)).toEqual({ event: 'connected', greeting: 'b' });
    expect(await star.connect(RELAY_HOST, star.leaves.a!.addr, onA.port, 5000)).toEqual({ event: 'connected', greeting: 'a' });
    const [aToB, bToA] = await Promise.all([star.connect('a', star.leaves.b!.addr, onB.port, 3000), star.connect('b', star.leaves.a!.addr, onA.port, 3000)]);
    expect(aToB.event).not.toBe('connected');
    expect(bToA.event).not.toBe('connected');
    console.log(`relay netns: A -> B ${JSON.stringify(aToB)}; B -> A ${JSON.stringify(bToA)}`);
  }, 40_000);

  // Through ferry's relay, and through an independently written one that speaks the same pairing line.
  for (const [name, start] of RELAYS) {
    test(`receiver first through ${name} on R: A receives, B sends a file and a folder; names, content and modes arrive`, async () => {
      const relay = await start(star);
      const src = await tempDir('ferry-relay-src-');
      const expected = await writeTree(src, [
        ['naïve café – Ωmega.txt', 40 * KiB, 0o640],
        ['tree/run.sh', 3 * KiB, 0o755],
        ['tree/sub/data.bin', 1536 * KiB, 0o600],
      ]);
      const dst = await tempDir('ferry-relay-dst-');
      const rx = await receiverFirst(star, 'a', relay.address, dst, ['--once']);
      const tx = star.ferry('b', ['send', join(src, 'naïve café – Ωmega.txt'), join(src, 'tree'), '--relay', relay.address, '--code', rx.code, '--json']);
      await expectExits([tx, rx], [ExitCode.Ok, ExitCode.Ok], 30_000);
      expect(await snapshot(dst)).toEqual(expected);
      if (relay.logsPairings) await expectPairedAB(relay);
    }, 45_000);

    test(`sender first through ${name} on R: A sends and waits with a code, B fetches with it and exits when done; names, content and modes arrive`, async () => {
      const relay = await start(star);
      const src = await tempDir('ferry-relay-src-');
      const expected = await writeTree(src, [
        ['first.bin', 900 * KiB, 0o700],
        ['second.txt', 5 * KiB, 0o644],
      ]);
      const dst = await tempDir('ferry-relay-dst-');
      const tx = await senderFirst(star, 'a', relay.address, [join(src, 'first.bin'), join(src, 'second.txt')]);
      const rx = star.ferry('b', ['receive', '--relay', relay.address, '--code', tx.code, '--dir', dst, '--json']);
      await expectExits([tx, rx], [ExitCode.Ok, ExitCode.Ok], 30_000);
      expect(await snapshot(dst)).toEqual(expected);
      if (relay.logsPairings) await expectPairedAB(relay);
    }, 45_000);
  }

  for (const senderGoesFirst of [false, true]) {
    test(`${senderGoesFirst ? 'sender first' : 'receiver first'}: a folder resumes after the relay is SIGKILLed mid-transfer and restarted on its port; it arrives whole, and the second run sent less than the whole`, async () => {
      const first = await startRelay(star);
      const src = await tempDir('ferry-relay-src-');
      const files: Array<[string, number, number]> = [
        ['album/one.bin', 1536 * KiB, 0o644],
        ['album/two.bin', 1536 * KiB, 0o644],
        ['album/three.bin', 1536 * KiB, 0o644],
        ['album/deep/four.bin', 1536 * KiB, 0o600],
        ['album/deep/notes.txt', 20 * KiB, 0o644],
      ];
      const expected = await writeTree(src, files);
      const total = files.reduce((sum, [, size]) => sum + size, 0);
      const dst = await tempDir('ferry-relay-dst-');
      // Held to 2 MiB/s so the kill lands mid-transfer: about 3 s for the folder.
      const sending = ['--limit-rate', '2M', '--retries', '8', '--retry-delay', '1'];
      let rx: NsProcess;
      let tx: NsProcess;
      if (senderGoesFirst) {
        const waiting = await senderFirst(star, 'b', first.address, [join(src, 'album'), ...sending]);
        tx = waiting;
        rx = star.ferry('a', ['receive', '--relay', first.address, '--code', waiting.code, '--dir', dst, '--json']);
      } else {
        // No --once: after the cut the receiver dials the relay again and waits for the sender's retry.
        const seated = await receiverFirst(star, 'a', first.address, dst, []);
        rx = seated;
        tx = star.ferry('b', ['send', join(src, 'album'), '--relay', first.address, '--code', seated.code, '--json', ...sending]);
      }
      const arrived = await rx.waitFor((e) => e.event === 'progress' && e.side === 'receive' && (e.done as number) > 0, 20_000);
      first.proc.child.kill('SIGKILL');
      expect(await first.proc.exit(5000)).toBe(128 + 9);
      expect(tx.exitedAt(), 'the sender finished before the relay was killed').toBeUndefined();
      const second = await startRelay(star, first.port);
      expect(await tx.exit(60_000), story(tx)).toBe(ExitCode.Ok);
      // A fetch ends with its sender; a receiver that went first serves on.
      if (senderGoesFirst) expect(await rx.exit(15_000), story(rx)).toBe(ExitCode.Ok);
      expect(await snapshot(dst)).toEqual(expected);
      const retry = tx.events.findIndex((e) => e.event === 'retry');
      expect(retry, `no retry event: ${story(tx)}`).toBeGreaterThanOrEqual(0);
      const sentAfter = tx.events.slice(retry).filter((e) => e.event === 'sent' && e.directory !== true);
      const resentBytes = sentAfter.reduce((sum, e) => sum + (e.transferred as number), 0);
      expect(resentBytes).toBeLessThan(total);
      // The second relay paired them again, and said so.
      await expectPairedAB(second);
      const resumed = tx.events.filter((e) => e.event === 'sent' && (e.resumedFrom as number) > 0);
      console.log(
        `relay netns, ${senderGoesFirst ? 'sender' : 'receiver'} first: relay killed at ${arrived.done as number} bytes of ${String(arrived.name)} received; after the retry the sender sent ${resentBytes} of ${total} bytes` +
          ` (${resumed.map((e) => `${String(e.name)} from ${e.resumedFrom as number}`).join(', ') || 'no file resumed mid-way'}; ${tx.events.filter((e) => e.event === 'unchanged').length} unchanged)`,
      );
    }, 90_000);
  }

  test('20 pairs at once through one relay: 20 receivers on A, 20 senders on B, each receiver gets exactly its sender\'s file', async () => {
    const relay = await startRelay(star);
    const pairs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const src = await tempDir('ferry-relay-src-');
        const dst = await tempDir('ferry-relay-dst-');
        const name = `pair-${i}.bin`;
        const content = randomBytes(64 * KiB + i * 7919);
        await writeFile(join(src, name), content);
        return { i, src, dst, name, content };
      }),
    );
    const receivers = await Promise.all(pairs.map((p) => receiverFirst(star, 'a', relay.address, p.dst, ['--once'], 30_000)));
    const codes = receivers.map((r) => r.code);
    expect(new Set(codes).size).toBe(20);
    // Nameplates are the relay's to hand out, one per waiting room.
    expect(new Set(codes.map((c) => c.split('-')[0])).size).toBe(20);
    const senders = pairs.map((p, i) => star.ferry('b', ['send', join(p.src, p.name), '--relay', relay.address, '--code', codes[i]!, '--json']));
    await expectExits([...senders, ...receivers], Array<number>(40).fill(ExitCode.Ok), 60_000);
    for (const p of pairs) {
      expect(await listing(p.dst), `pair ${p.i}`).toEqual([p.name]);
      expect(sha256(await readFile(join(p.dst, p.name))), `pair ${p.i}`).toBe(sha256(p.content));
    }
    // The log says so too, though not 20 times: like every kind of line, pairings are rate-limited.
    await expectPairedAB(relay);
  }, 90_000);

  test('20 pairs at once under one name, 10 receiver first and 10 sender first: every receiver gets its own sender\'s bytes', async () => {
    const relay = await startRelay(star);
    // One name for all: a crossed pair would show only in the content.
    const pairs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const src = await tempDir('ferry-relay-src-');
        const dst = await tempDir('ferry-relay-dst-');
        const content = randomBytes(96 * KiB + i * 4099);
        await writeFile(join(src, 'same.bin'), content);
        return { i, path: join(src, 'same.bin'), dst, content, senderFirst: i % 2 === 1 };
      }),
    );
    // Whoever waits is on A and prints the code; the other side, on B, gives it.
    const waiting = await Promise.all(
      pairs.map((p) => (p.senderFirst ? senderFirst(star, 'a', relay.address, [p.path]) : receiverFirst(star, 'a', relay.address, p.dst, ['--once'], 30_000))),
    );
    expect(new Set(waiting.map((w) => w.code.split('-')[0])).size).toBe(20);
    const others = pairs.map((p, i) =>
      p.senderFirst
        ? star.ferry('b', ['receive', '--relay', relay.address, '--code', waiting[i]!.code, '--dir', p.dst, '--json'])
        : star.ferry('b', ['send', p.path, '--relay', relay.address, '--code', waiting[i]!.code, '--json']),
    );
    await expectExits([...waiting, ...others], Array<number>(40).fill(ExitCode.Ok), 60_000);
    for (const p of pairs) {
      expect(await listing(p.dst), `pair ${p.i}`).toEqual(['same.bin']);
      expect(sha256(await readFile(join(p.dst, 'same.bin'))), `pair ${p.i}`).toBe(sha256(p.content));
    }
  }, 90_000);

  test('a wrong code through the relay, sender first: the fetching receiver exits with the wrong-code exit code, nothing is written; the waiting sender reports it, waits on, and the right code then fetches', async () => {
    const relay = await startRelay(star);
    const src = await tempDir('ferry-relay-src-');
    const expected = await writeTree(src, [['secret.bin', 256 * KiB, 0o644]]);
    const dst = await tempDir('ferry-relay-dst-');
    const waiting = await senderFirst(star, 'a', relay.address, [join(src, 'secret.bin')]);
    const fetch = star.ferry('b', ['receive', '--relay', relay.address, '--code', wrongWords(waiting.code), '--dir', dst, '--json']);
    await expectExits([fetch], [ExitCode.Refused], 30_000);
    expect(fetch.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE', exitCode: ExitCode.Refused }));
    await waiting.waitFor((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE' && e.exitCode === ExitCode.Refused, 10_000);
    // No file, and no partial either: nothing moves before the code is proven.
    expect(await listing(dst)).toEqual([]);
    // One stranger's guess does not end a sender that went first (src/sender/link.ts, WRONG_CODES_GOING_FIRST).
    const right = star.ferry('b', ['receive', '--relay', relay.address, '--code', waiting.code, '--dir', dst, '--json']);
    await expectExits([right, waiting], [ExitCode.Ok, ExitCode.Ok], 30_000);
    expect(await snapshot(dst)).toEqual(expected);
  }, 60_000);

  test('a wrong code through the relay, receiver first (--once): the sender exits with the wrong-code exit code, the receiver reports it, writes nothing and waits on; the right code then delivers', async () => {
    const relay = await startRelay(star);
    const src = await tempDir('ferry-relay-src-');
    const expected = await writeTree(src, [['secret.bin', 256 * KiB, 0o644]]);
    const dst = await tempDir('ferry-relay-dst-');
    const rx = await receiverFirst(star, 'a', relay.address, dst, ['--once']);
    const wrong = star.ferry('b', ['send', join(src, 'secret.bin'), '--relay', relay.address, '--code', wrongWords(rx.code), '--json']);
    await expectExits([wrong], [ExitCode.Refused], 30_000);
    expect(wrong.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_BAD_CODE', exitCode: ExitCode.Refused }));
    await rx.waitFor((e) => e.event === 'error' && e.code === 'ERR_BAD_CODE' && e.exitCode === ExitCode.Refused, 10_000);
    expect(await listing(dst)).toEqual([]);
    // As a receiver that listens: a wrong code is not the session --once waits for (README, "The code").
    const right = star.ferry('b', ['send', join(src, 'secret.bin'), '--relay', relay.address, '--code', rx.code, '--json']);
    await expectExits([right, rx], [ExitCode.Ok, ExitCode.Ok], 30_000);
    expect(await snapshot(dst)).toEqual(expected);
  }, 60_000);

  test('junk from a third host (random bytes, bad lines, trickles, idle nameplates, a churn of new connections) and 300 idle connections from a fourth, while a real pair transfers: the pair succeeds, verified', async () => {
    const relay = await startRelay(star);
    // J's junk stays under the relay's connections per source, so that the relay reads it all; K's idle ones go over.
    const junk = star.spawn('j', [process.execPath, JUNK, '--target', relay.address, '--random', '20', '--lines', '27', '--trickle', '20', '--allocate', '30', '--churn', '8', '--lifetime', '60']);
    const idle = star.spawn('k', [process.execPath, JUNK, '--target', relay.address, '--idle', '300', '--lifetime', '60']);
    const [junkReady, idleReady] = await Promise.all([junk.waitFor((e) => e.event === 'ready', 20_000), idle.waitFor((e) => e.event === 'ready', 20_000)]);
    // The relay read the junk and answered it: a refusal for every malformed line and every spray of random bytes, a nameplate for every allocation.
    expect(junkReady.answers).toMatchObject({ random: { [RELAY_BAD.trim()]: 20 }, lines: { [RELAY_BAD.trim()]: 27 }, allocate: { nameplate: 30 } });
    expect(idleReady.connected).toMatchObject({ idle: 300 });

    const src = await tempDir('ferry-relay-src-');
    const expected = await writeTree(src, [['real.bin', 4 * MiB, 0o644]]);
    const dst = await tempDir('ferry-relay-dst-');
    const rx = await receiverFirst(star, 'a', relay.address, dst, ['--once'], 20_000);
    const tx = star.ferry('b', ['send', join(src, 'real.bin'), '--relay', relay.address, '--code', rx.code, '--json']);
    await expectExits([tx, rx], [ExitCode.Ok, ExitCode.Ok], 45_000);
    expect(await snapshot(dst)).toEqual(expected);
    expect(relay.proc.exitedAt(), 'the relay died').toBeUndefined();
    await expectPairedAB(relay);

    junk.child.kill('SIGTERM');
    idle.child.kill('SIGTERM');
    const [junkSummary, idleSummary] = await Promise.all([junk.waitFor((e) => e.event === 'summary', 10_000), idle.waitFor((e) => e.event === 'summary', 10_000)]);
    expect(junkSummary.churned, 'the churn loops made connections').toBeGreaterThan(0);
    // The relay refused junk, and only junk: every refusal it logged is J's or K's.
    const refused = relay.proc.events.filter((e) => e.event === 'refused');
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) expect([star.leaves.j!.addr, star.leaves.k!.addr]).toContain(e.source);
    console.log(
      `relay netns: junk ${JSON.stringify(junkSummary)}; idle ${JSON.stringify(idleSummary)}; ` +
        `the relay logged (rate-limited) refusals ${countBy(refused, 'reason')}`,
    );
  }, 90_000);
});

describe('ferry through a relay on loopback (no namespace)', () => {
  afterEach(async () => {
    await stopLocal();
  });

  test('a recording proxy in front of the relay: the relay lines are the wire\'s, and no name, content, code or code word is anywhere in the recorded bytes', async () => {
    const relay = await localRelay();
    const recorder = await startRecorder({ host: '127.0.0.1', port: relay.port });
    try {
      const via = `127.0.0.1:${recorder.port}`;
      const src = await tempDir('ferry-relay-src-');
      const tag = randomBytes(4).toString('hex');
      const names = [`quokka-manifesto-${tag}.txt`, `wombat-ledger-${tag}.txt`];
      const contents = names.map((name, i) => distinctiveText(256 * KiB, `${name} line`, i));
      for (const [i, name] of names.entries()) await writeFile(join(src, name), contents[i]!);

      // Receiver first, then sender first, both through the recorder.
      const dstA = await tempDir('ferry-relay-dst-');
      const rx = await withCode(localFerry(['receive', '--relay', via, '--dir', dstA, '--once', '--json']), via, 15_000);
      const tx = localFerry(['send', join(src, names[0]!), '--relay', via, '--code', rx.code, '--json']);
      await expectExits([tx, rx], [ExitCode.Ok, ExitCode.Ok], 30_000);
      const dstB = await tempDir('ferry-relay-dst-');
      const waiting = await withCode(localFerry(['send', join(src, names[1]!), '--relay', via, '--json']), via, 15_000);
      const code = waiting.code;
      const fetch = localFerry(['receive', '--relay', via, '--code', code, '--dir', dstB, '--json']);
      await expectExits([waiting, fetch], [ExitCode.Ok, ExitCode.Ok], 30_000);
      expect((await readFile(join(dstA, names[0]!))).equals(contents[0]!)).toBe(true);
      expect((await readFile(join(dstB, names[1]!))).equals(contents[1]!)).toBe(true);

      const recordings = recorder.recordings();
      expect(recordings.length).toBeGreaterThanOrEqual(4);
      const carried = recordings.reduce((sum, r) => sum + r.up.length + r.down.length, 0);
      expect(carried, 'the files went through the recorder').toBeGreaterThan(contents[0]!.length + contents[1]!.length);
      // What the relay reads first on every connection is one of the wire's lines; a room token is the public nameplate's.
      const nameplates = new Set([rx.code, code].map((c) => Number(c.split('-')[0])));
      for (const r of recordings) {
        const first = r.up.subarray(0, r.up.indexOf(0x0a) + 1).toString('latin1');
        const request = parseRelayRequest(first);
        expect(request, `first line ${JSON.stringify(first)}`).not.toBeNull();
        if (request?.kind === 'relay') expect([...nameplates].map(roomToken)).toContain(request.token);
      }
      const needles: Record<string, Buffer> = {};
      for (const [i, name] of names.entries()) {
        needles[`name ${i}`] = Buffer.from(name);
        needles[`name ${i} without its tag`] = Buffer.from(name.replace(`-${tag}.txt`, ''));
        const content = contents[i]!;
        for (const at of [0, content.length >> 1, content.length - 48]) needles[`content ${i} at ${at}`] = content.subarray(at, at + 48);
      }
      for (const c of [rx.code, code]) {
        needles[`code ${c}`] = Buffer.from(c);
        needles[`code ${c} after its number`] = Buffer.from(c.slice(c.indexOf('-') + 1));
        // A 4-letter word turns up by chance in half a MiB of ciphertext about once in 10,000 runs.
        for (const word of c.split('-').slice(1)) needles[`word ${word}`] = Buffer.from(word);
      }
      expect(leaks(recordings, needles)).toEqual([]);
    } finally {
      await recorder.close();
    }
  }, 60_000);

  test('a relay that tampers (one byte of the sender\'s stream flipped, well past the handshake): both sides fail with exit 1, nothing visible is written', async () => {
    const relay = await localRelay();
    // Only the sender goes through the fault proxy; the receiver dials the relay itself.
    const tamper = await startProxy({ host: '127.0.0.1', port: relay.port }, { flipAt: 512 * KiB });
    try {
      const src = await tempDir('ferry-relay-src-');
      await writeTree(src, [['tampered.bin', 2 * MiB, 0o644]]);
      const dst = await tempDir('ferry-relay-dst-');
      const direct = `127.0.0.1:${relay.port}`;
      const rx = await withCode(localFerry(['receive', '--relay', direct, '--dir', dst, '--once', '--json']), direct, 15_000);
      const tx = localFerry(['send', join(src, 'tampered.bin'), '--relay', `127.0.0.1:${tamper.port}`, '--code', rx.code, '--json']);
      await expectExits([tx, rx], [ExitCode.Failed, ExitCode.Failed], 30_000);
      expect(tamper.forwarded.up, 'the flip was reached').toBeGreaterThan(512 * KiB);
      expect(tx.events.some((e) => e.event === 'sent')).toBe(false);
      expect(rx.events.some((e) => e.event === 'received')).toBe(false);
      expect(await visible(dst)).toEqual([]);
    } finally {
      await tamper.close();
    }
  }, 45_000);

  test("the suite's helpers clean up: the recorder records exactly, then closes its port and every connection; stopLocal() ends the relay and frees its port", async () => {
    const echo = createServer((s) => s.on('error', () => undefined).pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const recorder = await startRecorder({ host: '127.0.0.1', port: (echo.address() as AddressInfo).port });
    try {
      const client = await dial(recorder.port);
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const echoed = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
      client.write('quokka-manifesto');
      expect(await within(echoed, 5000, 'the echo')).toBe('quokka-manifesto');
      expect(recorder.recordings()).toEqual([{ up: Buffer.from('quokka-manifesto'), down: Buffer.from('quokka-manifesto') }]);
      expect(leaks(recorder.recordings(), { name: Buffer.from('manifesto'), other: Buffer.from('wombat') })).toEqual(['name']);
      expect(recorder.open()).toBe(2);
      await within(recorder.close(), 5000, 'recorder.close()');
      await within(closed, 5000, 'the client seeing the recorder close');
      expect(recorder.open()).toBe(0);
      await expect(dial(recorder.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      const relay = await localRelay();
      const idle = await dial(relay.port);
      const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
      await stopLocal();
      expect(relay.proc.exitedAt()).toBeDefined();
      await within(idleClosed, 5000, 'the relay connection closing with the relay');
      await expect(dial(relay.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await recorder.close();
      await within(new Promise((resolve) => echo.close(resolve)), 5000, 'the echo server closing');
    }
  }, 30_000);
});

// ---------------------------------------------------------------------------
// Processes

interface Relay {
  star: Star;
  proc: NsProcess;
  /** ferry's relay logs a JSON line per pairing (rate-limited); the transit relay's log is its own. */
  logsPairings: boolean;
  port: number;
  /** HOST:PORT as the clients give it to --relay. */
  address: string;
}

/** `ferry relay --host R --port PORT --json` on R; resolves once it printed its port. */
async function startRelay(on: Star, port = 0): Promise<Relay> {
  const proc = on.ferry(RELAY_HOST, ['relay', '--host', on.relay.addr, '--port', String(port), '--json']);
  const listening = await proc.waitFor((e) => e.event === 'listening', 15_000);
  expect(listening.host).toBe(on.relay.addr);
  if (port !== 0) expect(listening.port).toBe(port);
  return { star: on, proc, logsPairings: true, port: listening.port as number, address: `${on.relay.addr}:${listening.port as number}` };
}

/** The relay logged a pairing, and every pairing it logged joined A with B. */
async function expectPairedAB(relay: Relay): Promise<void> {
  await relay.proc.waitFor((e) => e.event === 'paired', 5000);
  const ab = [relay.star.leaves.a!.addr, relay.star.leaves.b!.addr].sort();
  for (const e of relay.proc.events.filter((ev) => ev.event === 'paired')) expect([...(e.sources as string[])].sort()).toEqual(ab);
}

/**
 * Debian's magic-wormhole-transit-relay (twist3) on R, on R's address and port 0; resolves once it
 * logged its port. Its log is JSON lines too ("Transit starting on N" in `log_text`).
 */
async function startTransit(on: Star): Promise<Relay> {
  const proc = on.spawn(RELAY_HOST, ['twist3', 'transitrelay', `--port=tcp:0:interface=${on.relay.addr}`]);
  const starting = await proc.waitFor((e) => /^Transit starting on \d+$/.test(String(e.log_text)), 15_000);
  const port = Number(/(\d+)$/.exec(String(starting.log_text))![1]);
  return { star: on, proc, logsPairings: false, port, address: `${on.relay.addr}:${port}` };
}

type Coded<P extends JsonProcess = NsProcess> = P & { code: string };

/** `ferry receive --relay ADDRESS --dir DIR --json` on `host`; resolves with the code it printed. */
async function receiverFirst(on: Star, host: string, address: string, dir: string, extra: string[], ms = 15_000): Promise<Coded> {
  return withCode(on.ferry(host, ['receive', '--relay', address, '--dir', dir, '--json', ...extra]), address, ms);
}

/** `ferry send ARGS --relay ADDRESS --json` (paths and flags) without a code on `host`; resolves with the code it printed while it waits. */
async function senderFirst(on: Star, host: string, address: string, paths: string[]): Promise<Coded> {
  return withCode(on.ferry(host, ['send', ...paths, '--relay', address, '--json']), address, 15_000);
}

/** Waits for the `listening` event of a relay client: it names the relay as given and carries a code. */
async function withCode<P extends JsonProcess>(proc: P, address: string, ms: number): Promise<Coded<P>> {
  const listening = await proc.waitFor((e) => e.event === 'listening', ms);
  expect(listening.relay).toBe(address);
  expect(listening.code).toMatch(CODE);
  return Object.assign(proc, { code: listening.code as string });
}

/** Every process exits with its expected code within `ms` (one bound for all: they run together). */
async function expectExits(procs: JsonProcess[], codes: number[], ms: number): Promise<void> {
  const got = await Promise.all(procs.map((p) => p.exit(ms)));
  for (const [i, proc] of procs.entries()) expect(got[i], story(proc)).toBe(codes[i]);
}

function story(proc: JsonProcess): string {
  return `${proc.child.spawnargs.slice(-12).join(' ')}: events ${JSON.stringify(proc.events.filter((e) => e.event !== 'progress'))}; stderr ${proc.stderr()}`;
}

/** The same code with its first word replaced by another list word: same nameplate, same room, other password. */
function wrongWords(code: string): string {
  const [number, first, ...rest] = code.split('-');
  const other = WORDS.find((w) => w !== first && !rest.includes(w))!;
  return [number, other, ...rest].join('-');
}

// On loopback: the CLI as plain child processes, killed by stopLocal().

const local = new Set<JsonProcess & { exited: Promise<number> }>();

function localFerry(args: string[]): JsonProcess {
  const proc = spawnJson(process.execPath, [CLI, ...withRetryDefault(args)]);
  local.add(proc);
  return proc;
}

/** SIGKILLs every loopback process still running and waits (bounded) until each has gone. */
async function stopLocal(): Promise<void> {
  const procs = [...local];
  local.clear();
  for (const p of procs) if (p.exitedAt() === undefined) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit(5000)));
}

async function localRelay(): Promise<{ proc: JsonProcess; port: number }> {
  const proc = localFerry(['relay', '--host', '127.0.0.1', '--port', '0', '--json']);
  const listening = await proc.waitFor((e) => e.event === 'listening', 15_000);
  return { proc, port: listening.port as number };
}


function dial(port: number): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    }),
    5000,
    `a connect to port ${port}`,
  );
}

// ---------------------------------------------------------------------------
// Files

interface Arrival {
  type: 'file' | 'dir';
  mode: number;
  sha256?: string;
}

/** Writes files (relative path, size, mode) under `root`; returns what must arrive: snapshot(root) as it now is. */
async function writeTree(root: string, files: Array<[string, number, number]>): Promise<Record<string, Arrival>> {
  for (const [i, [name, size, mode]] of files.entries()) {
    const path = join(root, name);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, pattern(size, 1000 + i));
    await chmod(path, mode);
  }
  return snapshot(root);
}

/** Every entry under `root` by relative path: type, permission bits, and each file's SHA-256. Hidden partials show too. */
async function snapshot(root: string, prefix = ''): Promise<Record<string, Arrival>> {
  const out: Record<string, Arrival> = {};
  for (const name of (await readdir(root)).sort()) {
    const path = join(root, name);
    const st = await lstat(path);
    const key = prefix + name;
    if (st.isDirectory()) {
      out[key] = { type: 'dir', mode: st.mode & 0o777 };
      Object.assign(out, await snapshot(path, `${key}/`));
    } else {
      out[key] = { type: 'file', mode: st.mode & 0o777, sha256: sha256(await readFile(path)) };
    }
  }
  return out;
}

/** Text that could only come from this file: `label`, a line number and words, line after line. */
function distinctiveText(bytes: number, label: string, seed: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${label} ${seed}:${i} the quokka counts ${(i * 7919 + seed) % 10007} pebbles at dawn\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function countBy(events: Event[], key: string): string {
  const counts = new Map<string, number>();
  for (const e of events) counts.set(String(e[key]), (counts.get(String(e[key])) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
}
