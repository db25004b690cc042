/**
 * The sender's wait for a VERDICT after END is bounded by the timeout plus
 * one second per 16 MiB (docs/protocol.md, section 4, rule 6), however many
 * HEARTBEATs the receiver sends: a receiver that heartbeats for ever after
 * END cannot hold the sender.
 */
import { afterEach, expect, test } from 'vitest';
import { send } from '../src/index.js';
import { FrameType } from '../src/protocol/constants.js';
import { encodeAccept, encodeHeartbeat } from '../src/protocol/messages.js';
import { answerHello, fakeReceiver, type FakeReceiver } from './support/fake-receiver.js';
import { tempDir, within, writeSample } from './support/files.js';

let fake: FakeReceiver | undefined;
const timers: NodeJS.Timeout[] = [];
afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  await fake?.close();
  fake = undefined;
});

test('a receiver that only heartbeats after END: ERR_TIMEOUT once the bound has passed, not never', async () => {
  const dir = await tempDir('ferry-sender-deadline-');
  const file = await writeSample(dir, 'a.bin', 100 * 1024);
  fake = await fakeReceiver({
    onFrame(frame, peer) {
      if (answerHello(frame, peer)) return;
      if (frame.type === FrameType.Offer) peer.say(encodeAccept());
      // Heartbeats well inside the idle timeout, and never a VERDICT.
      if (frame.type === FrameType.End) timers.push(setInterval(() => peer.say(encodeHeartbeat(100 * 1024)), 100));
    },
  });
  // Without the bound the send never ends: `within` fails the test then.
  const summary = await within(send({ insecure: true, files: [file.path], host: '127.0.0.1', port: fake.port, timeoutMs: 600 }), 10_000, 'send to give up');
  expect(summary.files.map((f) => f.code)).toEqual(['ERR_TIMEOUT']);
  expect(summary.exitCode).toBe(1);
  expect((await fake.frame(FrameType.Abort)).code).toBe('ERR_TIMEOUT');
});
