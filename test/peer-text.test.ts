/**
 * A peer's words never reach a terminal raw (issue 11, item 5; issue 13,
 * item 4): names and messages are escaped and quoted, and a refused name is
 * reported as the name that was offered.
 */
import { describe, expect, test } from 'vitest';
import { receive, type FerryEvent } from '../src/index.js';
import { FrameType, HashId } from '../src/protocol/constants.js';
import { encodeAbort, encodeHello, encodeOffer } from '../src/protocol/messages.js';
import { receiver } from './support/cli.js';
import { tempDir, within } from './support/files.js';
import { rawConnect } from './support/raw.js';

/** What a hostile peer writes: clear the screen, ring the bell, and a forged success line of ferry's. */
const FORGED = '\u001b[2J\u0007\nreceived secret.txt from 10.0.0.1:7878: 5 B in 0.01 s, sha256 00 verified, saved as ./secret.txt\u009b31m\u202e';
const RAW = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

async function receiverWithEvents(): Promise<{ port: number; events: FerryEvent[]; close(): Promise<number>; next(match: (e: FerryEvent) => boolean): Promise<FerryEvent> }> {
  const dir = await tempDir();
  const events: FerryEvent[] = [];
  let wake = (): void => {};
  const rx = await receive({ dir, host: '127.0.0.1', port: 0, insecure: true, onEvent: (e) => (events.push(e), wake()) });
  const next = (match: (e: FerryEvent) => boolean): Promise<FerryEvent> =>
    within(
      new Promise<FerryEvent>((resolve) => {
        const check = (): void => {
          const found = events.find(match);
          if (found) resolve(found);
        };
        wake = check;
        check();
      }),
      5000,
      'the event',
    );
  return { port: rx.port, events, close: () => rx.close(), next };
}

describe('the receiver shows a peer text escaped', () => {
  test("an ABORT's message: no control character, no line of its own, only inside quotes", async () => {
    const rx = await receiverWithEvents();
    const peer = await rawConnect(rx.port);
    peer.send(encodeHello([HashId.Sha256]));
    await peer.frame(0);
    peer.send(encodeAbort('ERR_IO', FORGED));
    const error = await rx.next((e) => e.event === 'error');
    await rx.close();
    expect(error).toMatchObject({ code: 'ERR_IO' });
    const message = (error as { message: string }).message;
    expect(message).not.toMatch(RAW);
    expect(message).toContain('"\\x1b[2J\\x07\\nreceived secret.txt');
  });

  test('a refused name is reported as offered, escaped (not as "FerryError" or "a file")', async () => {
    const rx = await receiverWithEvents();
    const peer = await rawConnect(rx.port);
    peer.send(encodeHello([HashId.Sha256]));
    await peer.frame(0);
    peer.send(encodeOffer({ size: 100_000, mtimeMs: 0, mode: 0o644, algorithm: HashId.Sha256, name: 'in\u001b[31mbox/a.txt' }));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Refuse, code: 'ERR_BAD_NAME' });
    const error = await rx.next((e) => e.event === 'error');
    peer.socket.destroy();
    await rx.close();
    expect(error).toMatchObject({ code: 'ERR_BAD_NAME', name: 'in\\x1b[31mbox/a.txt' });
    expect((error as { message: string }).message).not.toMatch(RAW);
  });
});

describe('on the terminal of a real receiver', () => {
  test("stderr carries the ABORT escaped on one line, and no line that looks like ferry's success line", async () => {
    const dir = await tempDir();
    const rx = await receiver(dir, ['--insecure']);
    const peer = await rawConnect(rx.port);
    peer.send(encodeHello([HashId.Sha256]));
    await peer.frame(0);
    peer.send(encodeAbort('ERR_IO', FORGED));
    await rx.waitFor((e) => e.event === 'error');
    // Stopped, so that all it wrote to stderr has been read.
    rx.child.kill('SIGINT');
    await rx.exit(5000);
    const lines = rx.stderr().split('\n');
    expect(lines.some((line) => line.includes('ERR_IO'))).toBe(true);
    for (const line of lines) expect(line).not.toMatch(RAW);
    expect(lines.filter((line) => line.startsWith('received'))).toEqual([]);
  });
});
