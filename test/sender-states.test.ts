/**
 * The sender obeys its state table (src/protocol/states.ts, docs/protocol.md
 * section 4) against a scripted receiver over a real loopback socket: a frame
 * its state does not allow ends the session with ERR_UNEXPECTED_FRAME, and
 * the legitimate flows (pipelined eager verdicts, ACCEPT with RESUME,
 * heartbeats in every state) still go through.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { send, type FerryEvent } from '../src/index.js';
import { FrameType, OfferFlag } from '../src/protocol/constants.js';
import { encodeAccept, encodeFrame, encodeHeartbeat, encodeVerdict, type ControlFrame } from '../src/protocol/messages.js';
import { answerHello, fakeReceiver, type FakePeer, type FakeReceiver } from './support/fake-receiver.js';
import { tempDir, within, writeSample } from './support/files.js';

const MiB = 1024 * 1024;
const KiB = 1024;

let fake: FakeReceiver | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
/** The content digest of an END frame (SHA-256: the fake receiver offers only that). */
const contentDigest = (frame: ControlFrame): Buffer => (frame.type === FrameType.End ? frame.digests.subarray(0, 32) : Buffer.alloc(0));

describe('a frame the state does not allow', () => {
  test('VERDICT OK with the right digest after the first 1 MiB of a 64 MiB file: ERR_UNEXPECTED_FRAME in SENDING, exit 1, no sent event, no END', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const file = await writeSample(dir, 'big.bin', 64 * MiB);
    const digest = sha256(file.content);
    let early = false;
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.Offer) peer.say(encodeAccept());
      },
      onData(peer) {
        if (early || peer.dataBytes < MiB) return;
        early = true;
        peer.say(encodeVerdict('OK', digest));
      },
    });
    const events: FerryEvent[] = [];
    const summary = await within(
      send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000, onEvent: (e) => events.push(e) }),
      30_000,
      'send',
    );
    expect(early).toBe(true);
    expect(summary.error?.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(summary.exitCode).toBe(1);
    expect(summary.files.map((f) => f.code)).toEqual(['ERR_UNEXPECTED_FRAME']);
    expect(events.filter((e) => e.event === 'sent')).toEqual([]);
    const abort = await fake.frame(FrameType.Abort);
    expect(abort.code).toBe('ERR_UNEXPECTED_FRAME');
    // The state named is the one the VERDICT arrived in (a table name, not prose).
    expect(abort.message).toMatch(/\bSENDING\b/);
    expect(fake.peers[0]!.frames.map((f) => f.type)).not.toContain(FrameType.End);
  });

  test('an ACCEPT for an eager offer, whose answer can only be a VERDICT: ERR_UNEXPECTED_FRAME naming EAGER, the state eager verdicts are read in', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const file = await writeSample(dir, 'small.txt', 100);
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.End) peer.say(encodeAccept());
      },
    });
    const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 30_000, 'send');
    expect(summary.error?.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(summary.files.map((f) => f.code)).toEqual(['ERR_UNEXPECTED_FRAME']);
    const abort = await fake.frame(FrameType.Abort);
    expect(abort.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(abort.message).toMatch(/\bEAGER\b/);
  });
});

describe('a frame the state does not allow, already waiting when the state begins', () => {
  test('ACCEPT and a VERDICT OK in one write (the VERDICT is decoded before the sender enters SENDING): ERR_UNEXPECTED_FRAME in SENDING, no sent event', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const file = await writeSample(dir, 'piped.bin', 4 * MiB);
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.Offer) peer.say(Buffer.concat([encodeAccept(), encodeVerdict('OK', sha256(file.content))]));
      },
    });
    const events: FerryEvent[] = [];
    const summary = await within(
      send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000, onEvent: (e) => events.push(e) }),
      30_000,
      'send',
    );
    expect(summary.error?.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(summary.exitCode).toBe(1);
    expect(events.filter((e) => e.event === 'sent')).toEqual([]);
    const abort = await fake.frame(FrameType.Abort);
    expect(abort.code).toBe('ERR_UNEXPECTED_FRAME');
    expect(abort.message).toMatch(/\bSENDING\b/);
  });
});

describe('the legitimate flows', () => {
  test('heartbeats in every state, eager verdicts answered while more eager offers go out, ACCEPT with an offset then RESUME: every file verified', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const small = await Promise.all([1, 2, 3, 4, 5].map((i) => writeSample(dir, `s${i}.txt`, 100 * i)));
    const large = await writeSample(dir, 'large.bin', 3 * MiB + 7);
    const held = 1 * MiB + 5;
    let midData = false;
    const beat = (peer: FakePeer): void => peer.say(encodeHeartbeat(0));
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        // HANDSHAKE, IDLE with verdicts due, OFFERED, SENDING (after RESUME) and AWAIT_VERDICT each get one.
        beat(peer);
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.Offer && !(frame.flags & OfferFlag.Eager)) {
          peer.say(encodeAccept(held, sha256(large.content.subarray(0, held))));
        } else if (frame.type === FrameType.End) {
          peer.say(encodeVerdict('OK', contentDigest(frame)));
        }
      },
      onData(peer) {
        if (midData || peer.dataBytes < MiB) return;
        midData = true;
        beat(peer);
      },
    });
    const events: FerryEvent[] = [];
    const summary = await within(
      send({
        insecure: true,
        files: [...small.map((f) => f.path), large.path],
        host: '127.0.0.1',
        port: fake.port,
        timeoutMs: 10_000,
        onEvent: (e) => events.push(e),
      }),
      30_000,
      'send',
    );
    expect(summary.error?.code).toBeUndefined();
    expect(summary.exitCode).toBe(0);
    expect(summary.files.map((f) => f.code)).toEqual(Array(6).fill('OK'));
    expect(midData).toBe(true);
    const big = summary.files[5]!;
    expect(big.resumedFrom).toBe(held);
    expect(big.transferred).toBe(large.content.length - held);
    const frames = fake.peers[0]!.frames;
    const resume = frames.find((f) => f.type === FrameType.Resume);
    expect(resume?.type === FrameType.Resume && resume.offset).toBe(held);
    expect(frames.at(-1)?.type).toBe(FrameType.Bye);
    expect(events.filter((e) => e.event === 'sent')).toHaveLength(6);
  });

  test('verdicts that arrive while the sender is still writing eager offers (the receiver answers each END at once): 300 files, all verified', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const files = await Promise.all(Array.from({ length: 300 }, (_, i) => writeSample(dir, `f${String(i).padStart(3, '0')}`, 4 * KiB, i + 1)));
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.End) peer.say(encodeVerdict('OK', contentDigest(frame)));
      },
    });
    const summary = await within(send({ insecure: true, files: files.map((f) => f.path), host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 30_000, 'send');
    expect(summary.exitCode).toBe(0);
    expect(summary.files.every((f) => f.code === 'OK')).toBe(true);
  });
});

describe('an --insecure sender answered with PAKE', () => {
  test('a peer that wants a code answers the plaintext HELLO with PAKE: ERR_INSECURE_MISMATCH (exit 4), like every other mismatch', async () => {
    const dir = await tempDir('ferry-sender-states-');
    const file = await writeSample(dir, 'a.txt', 10);
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (frame.type === FrameType.Hello) peer.say(encodeFrame(FrameType.Pake, Buffer.alloc(65, 4)));
      },
    });
    const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 30_000, 'send');
    expect(summary.files.map((f) => f.code)).toEqual(['ERR_INSECURE_MISMATCH']);
    expect(summary.exitCode).toBe(4);
  });
});
