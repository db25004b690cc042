/**
 * A raw wire peer against an in-process receiver (127.0.0.1, port 0): every
 * header field wrong, frames that the state does not allow, garbage, edge
 * names and floods. hostile.test.ts covers bad names, size mismatches, wrong
 * digests and some out-of-order frames; this file covers the rest.
 *
 * Each case checks the error code on the wire (ABORT or REFUSE) and in the
 * receiver's error event (with its exit code), that nothing was created in
 * or outside --dir (no temp file either), and that the receiver still serves
 * a correct sender afterwards. Violations are tried both as the first bytes
 * of a connection and in the middle of a file, with its temp file open.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { rawFrame } from '../fixtures/index.js';
import { receive, send, type FerryEvent, type Receiver } from '../src/index.js';
import { FrameType, HashId, HEADER_SIZE } from '../src/protocol/constants.js';
import { encodeBye, encodeEnd, encodeHello, encodeOffer, encodeHeartbeat, frameDataInPlace, payloadOf } from '../src/protocol/messages.js';
import { fingerprint, listing, pattern, sha256, tempDir, within, writeSample } from './support/files.js';
import { rawConnect, type RawPeer } from './support/raw.js';

const MiB = 1024 * 1024;

/** A full garbage collection, for memory measurements (the flag can be set at run time). */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

type ErrorEvent = Extract<FerryEvent, { event: 'error' }>;

let rx: Receiver;
let root: string;
let dst: string;
let rootBefore: string[];
let events: FerryEvent[] = [];
const watchers = new Set<() => void>();
/** Raw peers of the current test, closed after it. */
const peers: RawPeer[] = [];

async function connect(): Promise<RawPeer> {
  const peer = await rawConnect(rx.port);
  peers.push(peer);
  return peer;
}

// A fresh receiver and folder per case: a failing case cannot leave a session or a file behind for the next one.
beforeEach(async () => {
  // Not tempDir(): the receiver must be closed before its folder goes.
  root = await mkdtemp(join(tmpdir(), 'ferry-faults-raw-'));
  dst = join(root, 'inbox');
  await mkdir(dst);
  rootBefore = await readdir(root);
  events = [];
  rx = await receive({
    insecure: true,
    dir: dst,
    host: '127.0.0.1',
    port: 0,
    timeoutMs: 10_000,
    onEvent: (e) => {
      events.push(e);
      for (const w of [...watchers]) w();
    },
  });
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.socket.destroy();
  await rx.close();
  await rm(root, { recursive: true, force: true });
});

/** Resolves with the first receiver event after `mark` that matches. */
function eventAfter(mark: number, match: (e: FerryEvent) => boolean, what: string, ms = 5000): Promise<FerryEvent> {
  return within(
    new Promise<FerryEvent>((resolve) => {
      const check = (): void => {
        const found = events.slice(mark).find(match);
        if (!found) return;
        watchers.delete(check);
        resolve(found);
      };
      watchers.add(check);
      check();
    }),
    ms,
    `${what}; receiver events so far: ${JSON.stringify(events.slice(mark).filter((e) => e.event !== 'progress').slice(0, 20))}`,
  );
}

/**
 * The receiver's error event for the session (it comes after that session's
 * cleanup), naming `name`, no file (undefined), or not checked (null: the
 * dedicated test below checks what a session error names after a saved file).
 */
async function receiverError(mark: number, code: string, name: string | undefined | null = undefined): Promise<ErrorEvent> {
  const e = (await eventAfter(mark, (x) => x.event === 'error', `the receiver's ${code} error event`)) as ErrorEvent;
  expect(e).toMatchObject({ code, exitCode: 1 });
  if (name === undefined) expect(e.name).toBeUndefined();
  else if (name !== null) expect(e.name).toBe(name);
  return e;
}

/** The peer got ABORT `code` as its last frame and the receiver closed the connection. */
async function expectAborted(peer: RawPeer, code: string): Promise<void> {
  await peer.closed(5000);
  expect(peer.frames.at(-1)).toMatchObject({ type: FrameType.Abort, code });
}

/** After every case: nothing in --dir (no temp file), nothing beside it, and a correct sender is served. */
async function nothingLeftAndStillServing(): Promise<void> {
  expect(await listing(dst)).toEqual([]);
  expect(await readdir(root)).toEqual(rootBefore);
  const src = await tempDir();
  const file = await writeSample(src, 'canary.bin', 3000);
  const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: rx.port, timeoutMs: 5000 }), 5000, 'the canary transfer');
  expect(summary.exitCode, summary.error?.message).toBe(0);
  expect(fingerprint(await readFile(join(dst, 'canary.bin')))).toEqual(fingerprint(file.content));
  await unlink(join(dst, 'canary.bin'));
}

function data(bytes: Buffer): Buffer {
  const buffer = Buffer.alloc(HEADER_SIZE + bytes.length + 1);
  bytes.copy(buffer, HEADER_SIZE);
  return frameDataInPlace(buffer, bytes.length);
}

const offer = (name: string | Buffer, size: number): Buffer => encodeOffer({ size, mtimeMs: 0, mode: 0o644, algorithm: HashId.Sha256, name });

const endFor = (content: Buffer, offerFrame: Buffer): Buffer =>
  encodeEnd(Buffer.from(sha256(content), 'hex'), Buffer.from(sha256(payloadOf(offerFrame)), 'hex'));

/** A connection past the handshake. */
async function session(): Promise<RawPeer> {
  const peer = await connect();
  peer.send(encodeHello([HashId.Sha256]));
  expect(await peer.frame(0)).toMatchObject({ type: FrameType.Hello });
  return peer;
}

const VICTIM = 'victim.bin';
const VICTIM_SIZE = 10_000;

/** A connection in the middle of a file: accepted, 1000 bytes in, its temp file open. */
async function midFile(mark: number): Promise<RawPeer> {
  const peer = await session();
  peer.send(offer(VICTIM, VICTIM_SIZE));
  expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept, offset: 0 });
  await eventAfter(mark, (e) => e.event === 'start' && e.name === VICTIM, 'the start event');
  // ACCEPT is sent once the temp file exists.
  expect((await listing(dst)).filter((n) => /^\.ferry-.*\.part$/.test(n))).toHaveLength(1);
  peer.send(data(pattern(1000, 5)));
  return peer;
}

/** Seeded garbage (xorshift) whose first byte is not a start marker. */
function garbage(size: number, seed: number): Buffer {
  const bytes = pattern(size, seed);
  if (bytes[0] === 0xc8) bytes[0] = 0x00;
  return bytes;
}

// ---------------------------------------------------------------------------

describe('every header field wrong, at the start of a connection and in the middle of a file', () => {
  const cases: Array<{ label: string; code: string; first: () => Buffer; mid: () => Buffer }> = [
    {
      label: 'unknown frame type (0x0030, 0x7fff)',
      code: 'ERR_UNKNOWN_FRAME_TYPE',
      first: () => rawFrame(0x0030, ''),
      mid: () => rawFrame(0x7fff, '0102030405'),
    },
    {
      label: 'bad start marker',
      code: 'ERR_BAD_MAGIC',
      first: () => rawFrame(FrameType.Hello, '00000000 01 02', { start: 0xc9 }),
      mid: () => rawFrame(FrameType.Data, '68656c6c6f', { start: 0x00 }),
    },
    {
      label: 'bad end marker',
      code: 'ERR_BAD_END_MARKER',
      first: () => rawFrame(FrameType.Hello, '00000000 01 02', { end: 0x00 }),
      mid: () => rawFrame(FrameType.Data, '68656c6c6f', { end: 0xc8 }),
    },
    {
      label: 'version 2',
      code: 'ERR_UNSUPPORTED_VERSION',
      first: () => rawFrame(FrameType.Hello, '00000000 01 02', { version: 2 }),
      mid: () => rawFrame(FrameType.Data, '68656c6c6f', { version: 2 }),
    },
    {
      label: 'version 0',
      code: 'ERR_UNSUPPORTED_VERSION',
      first: () => rawFrame(FrameType.Hello, '00000000 01 02', { version: 0 }),
      mid: () => rawFrame(FrameType.End, Buffer.alloc(64), { version: 0 }),
    },
    {
      label: 'length 0 where a payload is required (HELLO first; END mid-file)',
      code: 'ERR_FRAME_TOO_SMALL',
      first: () => rawFrame(FrameType.Hello, ''),
      mid: () => rawFrame(FrameType.End, ''),
    },
    {
      label: 'length 0 DATA',
      code: 'ERR_FRAME_TOO_SMALL',
      first: () => rawFrame(FrameType.Data, ''),
      mid: () => rawFrame(FrameType.Data, ''),
    },
  ];

  for (const c of cases) {
    test(`${c.label}, as the first frame: ABORT ${c.code}`, async () => {
      const mark = events.length;
      const peer = await connect();
      peer.send(c.first());
      await expectAborted(peer, c.code);
      expect(peer.frames).toHaveLength(1);
      await receiverError(mark, c.code);
      await nothingLeftAndStillServing();
    });

    test(`${c.label}, in the middle of a file: ABORT ${c.code}, the temp file deleted`, async () => {
      const mark = events.length;
      const peer = await midFile(mark);
      peer.send(c.mid());
      await expectAborted(peer, c.code);
      await receiverError(mark, c.code, VICTIM);
      await nothingLeftAndStillServing();
    });
  }

  test('an OFFER of length 0: ABORT ERR_FRAME_TOO_SMALL', async () => {
    const mark = events.length;
    const peer = await session();
    peer.send(rawFrame(FrameType.Offer, ''));
    await expectAborted(peer, 'ERR_FRAME_TOO_SMALL');
    await receiverError(mark, 'ERR_FRAME_TOO_SMALL');
    await nothingLeftAndStillServing();
  });

  test('a DATA header claiming 2^32-1 bytes: ABORT ERR_FRAME_TOO_LARGE on the header alone; the receiver allocates nothing for it', async () => {
    const mark = events.length;
    const peer = await midFile(mark);
    // The header, and then a few MiB of what would be its payload: none of it may be buffered.
    const header = rawFrame(FrameType.Data, '', { length: 0xffffffff, end: null });
    const payload = Buffer.alloc(4 * MiB, 0x41); // allocated before measuring: it is this test's memory, not the receiver's
    const before = process.memoryUsage().rss;
    peer.send(header);
    peer.send(payload);
    await expectAborted(peer, 'ERR_FRAME_TOO_LARGE');
    await receiverError(mark, 'ERR_FRAME_TOO_LARGE', VICTIM);
    const after = process.memoryUsage().rss;
    console.log(`DATA of 2^32-1: rss ${(before / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB`);
    expect(after - before).toBeLessThan(8 * MiB);
    await nothingLeftAndStillServing();
  });

  test('a 10 KB name claimed in an OFFER header: ABORT ERR_FRAME_TOO_LARGE before any of the name is sent', async () => {
    const mark = events.length;
    const peer = await session();
    // Only the header: the receiver must not wait for (or buffer) the 10 KB.
    peer.send(rawFrame(FrameType.Offer, '', { length: 24 + 10_000, end: null }));
    await expectAborted(peer, 'ERR_FRAME_TOO_LARGE');
    await receiverError(mark, 'ERR_FRAME_TOO_LARGE');
    await nothingLeftAndStillServing();
  });
});

describe('frames the state does not allow', () => {
  test('two END frames for one complete file (pipelined): VERDICT OK for the first, ABORT ERR_UNEXPECTED_FRAME for the second; only the verified file is kept', async () => {
    const mark = events.length;
    const peer = await session();
    const content = pattern(5000, 21);
    const o = offer('twice-ended.bin', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content), endFor(content, o), endFor(content, o)]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK', digest: sha256(content) });
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    await receiverError(mark, 'ERR_UNEXPECTED_FRAME', null);
    expect(await listing(dst)).toEqual(['twice-ended.bin']);
    expect(fingerprint(await readFile(join(dst, 'twice-ended.bin')))).toEqual(fingerprint(content));
    await unlink(join(dst, 'twice-ended.bin'));
    await nothingLeftAndStillServing();
  });

  test('two END frames, the first one early: VERDICT ERR_SIZE_MISMATCH, then ABORT ERR_UNEXPECTED_FRAME; nothing kept', async () => {
    const mark = events.length;
    const peer = await session();
    const content = pattern(5000, 22);
    const o = offer('early-end.bin', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content.subarray(0, 100)), endFor(content, o)]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_SIZE_MISMATCH' });
    peer.send(endFor(content, o));
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    const errors = await within(
      (async () => {
        await eventAfter(mark, (e) => e.event === 'error' && e.code === 'ERR_UNEXPECTED_FRAME', 'the session error');
        return events.slice(mark).filter((e): e is ErrorEvent => e.event === 'error');
      })(),
      5000,
    );
    expect(errors.map((e) => [e.code, e.exitCode])).toEqual([
      ['ERR_SIZE_MISMATCH', 3],
      ['ERR_UNEXPECTED_FRAME', 1],
    ]);
    await nothingLeftAndStillServing();
  });

  test('DATA after the verdict: ABORT ERR_UNEXPECTED_FRAME; the verified file stays, nothing else is written', async () => {
    const mark = events.length;
    const peer = await session();
    const content = pattern(3000, 23);
    const o = offer('then-more.bin', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content), endFor(content, o)]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
    peer.send(data(Buffer.from('one more thing')));
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    await receiverError(mark, 'ERR_UNEXPECTED_FRAME', null);
    expect(await listing(dst)).toEqual(['then-more.bin']);
    expect(fingerprint(await readFile(join(dst, 'then-more.bin')))).toEqual(fingerprint(content));
    await unlink(join(dst, 'then-more.bin'));
    await nothingLeftAndStillServing();
  });

  test('DATA pipelined right behind END (before the verdict is out): VERDICT OK, then ABORT ERR_UNEXPECTED_FRAME', async () => {
    const mark = events.length;
    const peer = await session();
    const content = pattern(3000, 24);
    const o = offer('behind-end.bin', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content), endFor(content, o), data(Buffer.from('extra'))]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    await receiverError(mark, 'ERR_UNEXPECTED_FRAME', null);
    expect(fingerprint(await readFile(join(dst, 'behind-end.bin')))).toEqual(fingerprint(content));
    await unlink(join(dst, 'behind-end.bin'));
    await nothingLeftAndStillServing();
  });

  test('a heartbeat (PROGRESS) from the sender in the middle of a file: ABORT ERR_UNEXPECTED_FRAME, the temp file deleted', async () => {
    const mark = events.length;
    const peer = await midFile(mark);
    peer.send(encodeHeartbeat(1000));
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    await receiverError(mark, 'ERR_UNEXPECTED_FRAME', VICTIM);
    await nothingLeftAndStillServing();
  });

  test('a violation after a verified file is the session\'s error, not the file\'s: the error event does not name the file it reported received', async () => {
    const mark = events.length;
    const peer = await session();
    const content = pattern(2000, 25);
    const o = offer('saved-then-violation.bin', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content), endFor(content, o)]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
    expect(await eventAfter(mark, (e) => e.event === 'received', 'the received event')).toMatchObject({ name: 'saved-then-violation.bin' });
    peer.send(rawFrame(0x0030, ''));
    await expectAborted(peer, 'ERR_UNKNOWN_FRAME_TYPE');
    const error = await receiverError(mark, 'ERR_UNKNOWN_FRAME_TYPE', null);
    expect(await listing(dst)).toEqual(['saved-then-violation.bin']);
    expect(error.name).toBeUndefined();
    expect(error.message).not.toMatch(/saved-then-violation/);
    await unlink(join(dst, 'saved-then-violation.bin'));
    await nothingLeftAndStillServing();
  });
});

describe('garbage', () => {
  test('64 KiB of seeded garbage after HELLO: ABORT ERR_BAD_MAGIC', async () => {
    const mark = events.length;
    const peer = await session();
    peer.send(garbage(64 * 1024, 0xbad));
    await expectAborted(peer, 'ERR_BAD_MAGIC');
    await receiverError(mark, 'ERR_BAD_MAGIC');
    await nothingLeftAndStillServing();
  });

  test('garbage in place of the next DATA frame, mid-file: ABORT ERR_BAD_MAGIC, the temp file deleted', async () => {
    const mark = events.length;
    const peer = await midFile(mark);
    peer.send(garbage(16 * 1024, 0xf00d));
    await expectAborted(peer, 'ERR_BAD_MAGIC');
    await receiverError(mark, 'ERR_BAD_MAGIC', VICTIM);
    await nothingLeftAndStillServing();
  });

  test('garbage that starts like a frame (marker and version right, then noise): ABORT ERR_UNKNOWN_FRAME_TYPE', async () => {
    const mark = events.length;
    const peer = await session();
    peer.send(Buffer.concat([Buffer.from([0xc8, 0x01, 0xab, 0xcd]), garbage(4096, 0xcafe)]));
    await expectAborted(peer, 'ERR_UNKNOWN_FRAME_TYPE');
    await receiverError(mark, 'ERR_UNKNOWN_FRAME_TYPE');
    await nothingLeftAndStillServing();
  });
});

describe('names', () => {
  test('the Windows-reserved name CON is an ordinary name here: it arrives as a normal file named CON', async () => {
    const mark = events.length;
    const peer = await session();
    const content = Buffer.from('not a console\n');
    const o = offer('CON', content.length);
    peer.send(o);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Accept });
    peer.send(Buffer.concat([data(content), endFor(content, o)]));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK', digest: sha256(content) });
    peer.send(encodeBye());
    await peer.closed(5000);
    expect(await eventAfter(mark, (e) => e.event === 'received', 'the received event')).toMatchObject({ name: 'CON', path: join(dst, 'CON') });
    expect(await listing(dst)).toEqual(['CON']);
    expect(await readFile(join(dst, 'CON'), 'utf8')).toBe('not a console\n');
    expect(events.slice(mark).filter((e) => e.event === 'error')).toEqual([]);
    await unlink(join(dst, 'CON'));
    await nothingLeftAndStillServing();
  });

  test('other Windows-reserved names and trailing dots and spaces are ordinary names too (NUL, COM1, LPT9, aux.txt, "dot.", "space ")', async () => {
    const mark = events.length;
    const names = ['NUL', 'COM1', 'LPT9', 'aux.txt', 'dot.', 'space '];
    const peer = await session();
    let n = 1;
    for (const [i, name] of names.entries()) {
      const content = pattern(100 + i, 30 + i);
      const o = offer(name, content.length);
      peer.send(o);
      expect(await peer.frame(n++)).toMatchObject({ type: FrameType.Accept });
      peer.send(Buffer.concat([data(content), endFor(content, o)]));
      expect(await peer.frame(n++)).toMatchObject({ type: FrameType.Verdict, code: 'OK' });
    }
    peer.send(encodeBye());
    await peer.closed(5000);
    expect(await listing(dst)).toEqual([...names].sort());
    for (const [i, name] of names.entries()) {
      expect(fingerprint(await readFile(join(dst, name)))).toEqual(fingerprint(pattern(100 + i, 30 + i)));
      await unlink(join(dst, name));
    }
    expect(events.slice(mark).filter((e) => e.event === 'error')).toEqual([]);
    await nothingLeftAndStillServing();
  });

  test('a newline or carriage return anywhere in the name: REFUSE ERR_BAD_NAME each time, the session goes on to a clean BYE', async () => {
    const mark = events.length;
    const names = ['report.txt\n', '\nreport.txt', 'a\r\nb', 'cr\r'];
    const peer = await session();
    for (const [i, name] of names.entries()) {
      peer.send(offer(name, 5));
      expect(await peer.frame(1 + i)).toMatchObject({ type: FrameType.Refuse, code: 'ERR_BAD_NAME' });
    }
    peer.send(encodeBye());
    await peer.closed(5000);
    expect(peer.frames.some((f) => f.type === FrameType.Abort)).toBe(false);
    const errors = events.slice(mark).filter((e): e is ErrorEvent => e.event === 'error');
    expect(errors.map((e) => [e.code, e.exitCode])).toEqual(names.map(() => ['ERR_BAD_NAME', 4]));
    await nothingLeftAndStillServing();
  });
});

describe('floods', () => {
  test('20,000 OFFERs (4 KiB names) without waiting for answers: all refused, in order; the receiver holds back instead of queueing, memory stays bounded', async () => {
    const mark = events.length;
    const peer = await session();
    const COUNT = 20_000;
    const frame = offer(Buffer.alloc(4096, 0x6e), 1); // a name over 255 bytes: ERR_NAME_TOO_LONG, the session goes on
    const flood = COUNT * frame.length;
    collectGarbage();
    const before = process.memoryUsage();
    const peak = { rss: before.rss, arrayBuffers: before.arrayBuffers };
    const sample = (): void => {
      const now = process.memoryUsage();
      peak.rss = Math.max(peak.rss, now.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, now.arrayBuffers);
    };
    // Write as fast as TCP takes it, never reading an answer first.
    await within(
      (async () => {
        for (let i = 0; i < COUNT; i++) {
          if (i % 250 === 0) sample();
          if (!peer.socket.write(frame)) await new Promise((resolve) => peer.socket.once('drain', resolve));
        }
      })(),
      20_000,
      'the flood',
    );
    sample();
    await peer.frame(COUNT, 20_000);
    sample();
    peer.send(encodeBye());
    await peer.closed(5000);
    const answers = peer.frames.slice(1);
    expect(answers).toHaveLength(COUNT);
    expect(answers.every((f) => f.type === FrameType.Refuse && f.code === 'ERR_NAME_TOO_LONG')).toBe(true);
    const errors = events.slice(mark).filter((e): e is ErrorEvent => e.event === 'error');
    expect(errors).toHaveLength(COUNT);
    expect(errors.every((e) => e.code === 'ERR_NAME_TOO_LONG' && e.exitCode === 4)).toBe(true);
    // Drop this test's own records of the 40,000 frames and events, then see what the receiver kept.
    peer.frames.length = 0;
    events.length = mark;
    answers.length = 0;
    errors.length = 0;
    collectGarbage();
    const after = process.memoryUsage();
    console.log(
      `OFFER flood: ${(flood / MiB).toFixed(1)} MiB of OFFERs; Buffer memory ${(before.arrayBuffers / MiB).toFixed(1)} -> peak ${(peak.arrayBuffers / MiB).toFixed(1)} MiB; ` +
        `rss ${(before.rss / MiB).toFixed(1)} -> peak ${(peak.rss / MiB).toFixed(1)} MiB (this test's own records included); ` +
        `JS heap after GC ${(before.heapUsed / MiB).toFixed(1)} -> ${(after.heapUsed / MiB).toFixed(1)} MiB`,
    );
    // Unanswered OFFERs would sit in Buffers: those never held more than a few reads' worth of the flood.
    expect(peak.arrayBuffers - before.arrayBuffers).toBeLessThan(24 * MiB);
    // And nothing of it was retained.
    expect(after.heapUsed - before.heapUsed).toBeLessThan(8 * MiB);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(8 * MiB);
    await nothingLeftAndStillServing();
  });

  test('OFFERs for real files pipelined without waiting: the first is accepted, the second aborts ERR_UNEXPECTED_FRAME; no temp file left', async () => {
    const mark = events.length;
    const peer = await session();
    const offers = Array.from({ length: 500 }, (_, i) => offer(`flood-${i}.bin`, 10));
    peer.send(Buffer.concat(offers));
    await expectAborted(peer, 'ERR_UNEXPECTED_FRAME');
    expect(peer.frames.map((f) => f.type)).toEqual([FrameType.Hello, FrameType.Accept, FrameType.Abort]);
    await receiverError(mark, 'ERR_UNEXPECTED_FRAME', 'flood-0.bin');
    await nothingLeftAndStillServing();
  });
});
