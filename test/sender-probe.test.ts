/**
 * The sender's side of re-sending, against a scripted receiver: what it
 * does with each answer to a probe (the same digest: not sent, unchanged;
 * another digest or ERR_NOT_HELD: sent; a refusal: that refusal, not
 * sent), that --no-skip-same sends without asking, that --update asks for
 * REPLACE, and that ERR_NOT_HELD answering anything but a probe fails the
 * file instead of passing for success.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { send, type FerryEvent } from '../src/index.js';
import { FrameType, OfferFlag } from '../src/protocol/constants.js';
import type { ErrorCode } from '../src/protocol/errors.js';
import { encodeVerdict, type ControlFrame, type OfferFrame } from '../src/protocol/messages.js';
import { answerHello, fakeReceiver, type FakePeer, type FakeReceiver } from './support/fake-receiver.js';
import { tempDir, within, writeSample } from './support/files.js';

let fake: FakeReceiver | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** A receiver that answers probes with `probe(name)` and every eager file with `file(name)` (OK: the digest END carried). */
async function scripted(answers: { probe: (name: string) => { code: ErrorCode; digest?: Buffer }; file?: (name: string) => ErrorCode }): Promise<FakeReceiver> {
  let eager: OfferFrame | undefined;
  return fakeReceiver({
    onFrame(frame: ControlFrame, peer: FakePeer) {
      if (answerHello(frame, peer)) return;
      if (frame.type === FrameType.Offer && (frame.flags & OfferFlag.Probe) !== 0) {
        const a = answers.probe(frame.name.toString());
        peer.say(encodeVerdict(a.code, a.digest ?? Buffer.alloc(0)));
      } else if (frame.type === FrameType.Offer) {
        eager = frame;
      } else if (frame.type === FrameType.End && eager) {
        const code = answers.file?.(eager.name.toString()) ?? 'OK';
        peer.say(encodeVerdict(code, code === 'OK' ? frame.digests.subarray(0, 32) : Buffer.alloc(0)));
        eager = undefined;
      } else if (frame.type === FrameType.Bye) {
        peer.socket.end();
      }
    },
  });
}

const offers = (f: FakeReceiver): OfferFrame[] => f.peers.flatMap((p) => p.frames).filter((x): x is OfferFrame => x.type === FrameType.Offer);
const plain = (f: FakeReceiver): string[] => offers(f).filter((o) => (o.flags & OfferFlag.Probe) === 0).map((o) => o.name.toString());

async function sendTwo(extra: { skipSame?: boolean; update?: boolean } = {}): Promise<{ summary: Awaited<ReturnType<typeof send>>; events: FerryEvent[]; same: Buffer }> {
  const dir = await tempDir('ferry-sender-probe-');
  const same = await writeSample(dir, 'same.txt', 100);
  const other = await writeSample(dir, 'other.txt', 100);
  const events: FerryEvent[] = [];
  const summary = await within(
    // Loose files are probed when asked (a folder is probed by default).
    send({ insecure: true, files: [same.path, other.path], host: '127.0.0.1', port: fake!.port, timeoutMs: 10_000, onEvent: (e) => events.push(e), skipSame: true, ...extra }),
    20_000,
    'send',
  );
  return { summary, events, same: sha256(same.content) };
}

describe('answers to probes', () => {
  test('a folder the receiver holds nothing of (OK, the digest of no file): its files are sent with no probe each; another folder digest: probed one by one', async () => {
    const EMPTY = sha256(Buffer.alloc(0));
    const dir = await tempDir('ferry-sender-probe-');
    for (const name of ['new', 'old']) {
      await mkdir(`${dir}/${name}`);
      await writeSample(dir, `${name}/a.txt`, 10);
      await writeSample(dir, `${name}/b.txt`, 20);
    }
    const folderDigest = (name: string): Buffer | undefined => (name === 'new' ? EMPTY : name === 'old' ? sha256(Buffer.from('something else')) : undefined);
    let eager: OfferFrame | undefined;
    fake = await fakeReceiver({
      onFrame(frame: ControlFrame, peer: FakePeer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.Offer && (frame.flags & OfferFlag.Probe) !== 0) {
          const digest = folderDigest(frame.name.toString());
          peer.say(digest ? encodeVerdict('OK', digest) : encodeVerdict('ERR_NOT_HELD', Buffer.alloc(0)));
        } else if (frame.type === FrameType.Offer && (frame.flags & OfferFlag.Directory) !== 0) {
          peer.say(encodeVerdict('OK', Buffer.alloc(0)));
        } else if (frame.type === FrameType.Offer) {
          eager = frame;
        } else if (frame.type === FrameType.End && eager) {
          peer.say(encodeVerdict('OK', frame.digests.subarray(0, 32)));
          eager = undefined;
        } else if (frame.type === FrameType.Bye) {
          peer.socket.end();
        }
      },
    });
    const summary = await within(send({ insecure: true, files: [`${dir}/new`, `${dir}/old`], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 20_000, 'send');
    expect(summary.exitCode).toBe(0);
    const probed = offers(fake).filter((o) => (o.flags & OfferFlag.Probe) !== 0).map((o) => o.name.toString());
    expect(probed).toEqual(['new', 'old', 'old/a.txt', 'old/b.txt']);
    expect(plain(fake).sort()).toEqual(['new', 'new/a.txt', 'new/b.txt', 'old', 'old/a.txt', 'old/b.txt']);
  });

  test('the same digest: not sent, unchanged, exit 0; another digest: sent', async () => {
    let digest: Buffer = Buffer.alloc(32);
    fake = await scripted({ probe: (name) => ({ code: 'OK', digest: name === 'same.txt' ? digest : Buffer.alloc(32, 7) }) });
    const dir = await tempDir('ferry-sender-probe-');
    const same = await writeSample(dir, 'same.txt', 100);
    await writeSample(dir, 'other.txt', 100);
    digest = sha256(same.content);
    const events: FerryEvent[] = [];
    const summary = await within(send({ insecure: true, files: [same.path, `${dir}/other.txt`], host: '127.0.0.1', port: fake.port, skipSame: true, onEvent: (e) => events.push(e) }), 20_000, 'send');
    expect(summary.exitCode).toBe(0);
    expect(plain(fake)).toEqual(['other.txt']);
    expect(summary.files.map((f) => [f.name, f.code, f.unchanged ?? false, f.transferred])).toEqual([
      ['same.txt', 'OK', true, 0],
      ['other.txt', 'OK', false, 100],
    ]);
    expect(events).toContainEqual({ event: 'unchanged', side: 'send', name: 'same.txt', bytes: 100, hash: { algorithm: 'sha256', digest: digest.toString('hex') } });
    expect(events.find((e) => e.event === 'summary')).toMatchObject({ files: 1, unchanged: 1, failures: 0 });
  });

  test('ERR_NOT_HELD: sent; a refusal: that refusal, and not sent', async () => {
    fake = await scripted({ probe: (name) => ({ code: name === 'same.txt' ? 'ERR_NOT_HELD' : 'ERR_TOO_LARGE' }) });
    const { summary } = await sendTwo();
    expect(plain(fake)).toEqual(['same.txt']);
    expect(summary.files.map((f) => [f.name, f.code])).toEqual([
      ['same.txt', 'OK'],
      ['other.txt', 'ERR_TOO_LARGE'],
    ]);
    expect(summary.exitCode).toBe(4);
  });

  test('--no-skip-same asks nothing; --update asks for REPLACE on every offer', async () => {
    fake = await scripted({ probe: () => ({ code: 'ERR_NOT_HELD' }) });
    const plainSend = await sendTwo({ skipSame: false });
    expect(plainSend.summary.exitCode).toBe(0);
    expect(offers(fake).map((o) => o.flags)).toEqual([OfferFlag.Eager, OfferFlag.Eager]);
    await fake.close();
    fake = await scripted({ probe: () => ({ code: 'ERR_NOT_HELD' }) });
    const updating = await sendTwo({ update: true });
    expect(updating.summary.exitCode).toBe(0);
    expect(offers(fake).map((o) => o.flags)).toEqual([OfferFlag.Probe, OfferFlag.Probe, OfferFlag.Eager | OfferFlag.Replace, OfferFlag.Eager | OfferFlag.Replace]);
  });

  test('ERR_NOT_HELD answering a file (not a probe) fails that file (ERR_TRANSFER, exit 1): it never passes for delivered', async () => {
    fake = await scripted({ probe: () => ({ code: 'ERR_NOT_HELD' }), file: (name) => (name === 'same.txt' ? 'ERR_NOT_HELD' : 'OK') });
    const { summary } = await sendTwo();
    expect(summary.files.map((f) => [f.name, f.code])).toEqual([
      ['same.txt', 'ERR_TRANSFER'],
      ['other.txt', 'OK'],
    ]);
    expect(summary.exitCode).toBe(1);
  });
});
