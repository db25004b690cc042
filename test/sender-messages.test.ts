/**
 * Text across the wire, both ways, against a scripted receiver over a real
 * loopback socket: what the sender tells the peer names files by their
 * offered relative name only, and what the peer says reaches the user
 * escaped and quoted (src/printable.ts), never raw.
 */
import { appendFile, unlink } from 'node:fs/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { send, type FerryEvent } from '../src/index.js';
import { FrameType, OfferFlag } from '../src/protocol/constants.js';
import { codeOfWireStatus, wireStatusOf } from '../src/protocol/errors.js';
import { encodeAccept, encodeRefuse, encodeVerdict } from '../src/protocol/messages.js';
import { answerHello, fakeReceiver, type FakeReceiver } from './support/fake-receiver.js';
import { tempDir, within, writeSample } from './support/files.js';

const KiB = 1024;

let fake: FakeReceiver | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

/** Accepts the first non-eager offer, after doing `meanwhile` to its source file. */
async function acceptAfter(meanwhile: () => Promise<void>): Promise<FakeReceiver> {
  return fakeReceiver({
    onFrame(frame, peer) {
      if (answerHello(frame, peer)) return;
      if (frame.type === FrameType.Offer && !(frame.flags & OfferFlag.Eager)) {
        void meanwhile().then(() => peer.say(encodeAccept()));
      }
    },
  });
}

describe('what the sender tells the peer', () => {
  test('a file that grows once offered: ABORT ERR_SOURCE_CHANGED whose message names the file by its offered name, not the local path or temp dir', async () => {
    const dir = await tempDir('ferry-sender-messages-');
    const file = await writeSample(dir, 'grows.bin', 256 * KiB);
    fake = await acceptAfter(() => appendFile(file.path, Buffer.alloc(KiB, 7)));
    const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 20_000, 'send');
    expect(summary.error?.code).toBe('ERR_SOURCE_CHANGED');
    const abort = await fake.frame(FrameType.Abort);
    expect(abort.code).toBe('ERR_SOURCE_CHANGED');
    expect(abort.message).toContain('grows.bin');
    expect(abort.message).not.toContain(file.path);
    expect(abort.message).not.toContain(dir);
  });

  test('a file deleted once accepted: an ABORT without the local path', async () => {
    const dir = await tempDir('ferry-sender-messages-');
    const file = await writeSample(dir, 'gone.bin', 256 * KiB);
    fake = await acceptAfter(() => unlink(file.path));
    const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000 }), 20_000, 'send');
    expect(summary.error?.code).toBe('ERR_UNREADABLE');
    const abort = await fake.frame(FrameType.Abort);
    // ERR_UNREADABLE has no wire status of its own: it travels as whatever errors.ts maps it to.
    expect(abort.code).toBe(codeOfWireStatus(wireStatusOf('ERR_UNREADABLE')));
    expect(abort.message).not.toContain(dir);
  });
});

describe('what the peer says, as the user sees it', () => {
  test('a REFUSE and a refusing VERDICT carrying ESC [2J and a newline: result and error messages hold neither ESC nor a newline', async () => {
    const dir = await tempDir('ferry-sender-messages-');
    const small = await writeSample(dir, 'small.txt', 100);
    const large = await writeSample(dir, 'large.bin', 256 * KiB);
    const hostile = 'wiped\x1b[2J\nferry: sent large.bin';
    fake = await fakeReceiver({
      onFrame(frame, peer) {
        if (answerHello(frame, peer)) return;
        if (frame.type === FrameType.End) peer.say(encodeVerdict('ERR_EXISTS', Buffer.alloc(0), hostile));
        if (frame.type === FrameType.Offer && !(frame.flags & OfferFlag.Eager)) peer.say(encodeRefuse('ERR_EXISTS', hostile));
      },
    });
    const events: FerryEvent[] = [];
    const summary = await within(
      send({ insecure: true, files: [small.path, large.path], host: '127.0.0.1', port: fake.port, timeoutMs: 10_000, onEvent: (e) => events.push(e) }),
      20_000,
      'send',
    );
    expect(summary.files.map((f) => f.code)).toEqual(['ERR_EXISTS', 'ERR_EXISTS']);
    const errors = events.filter((e) => e.event === 'error');
    expect(errors).toHaveLength(2);
    for (const message of [...summary.files.map((f) => f.message), ...errors.map((e) => (e.event === 'error' ? e.message : ''))]) {
      expect(message).not.toContain('\x1b');
      expect(message).not.toContain('\n');
    }
  });
});
