/**
 * The progress bars as a person sees them: the real CLI on a pseudo-terminal
 * (util-linux `script`), both sides, a transfer held to a known rate so the
 * bar has time to move. Issue: the sender's bar sat at 0% for a whole
 * transfer while the receiver's moved.
 */
import { expect, test } from 'vitest';
import { TEST_CODE } from './support/cli.js';
import { tempDir, writeSample } from './support/files.js';
import { onTerminal } from './support/pty.js';

const terminal = (args: string[]): ReturnType<typeof onTerminal> =>
  onTerminal(args, { env: { ...process.env, FERRY_CODE: TEST_CODE, COLUMNS: '120' }, exitMs: 30_000 });

/** The percentages a bar drew, in the order drawn (cli-progress redraws the line in place). */
function percentages(screen: string, label: RegExp): number[] {
  const seen: number[] = [];
  for (const line of screen.split(/\r|\n|\x1b\[[0-9;]*[A-Za-z]/)) {
    if (!label.test(line)) continue;
    const m = / (\d{1,3})% /.exec(line);
    if (m) seen.push(Number(m[1]));
  }
  return seen;
}

test('sending 6 MiB at 2 MiB/s: both bars show the real progress, climbing, not stuck at 0%', async () => {
  const src = await tempDir();
  const dst = await tempDir();
  const file = await writeSample(src, 'moving.bin', 6 * 1024 * 1024);
  const rx = terminal(['receive', '--once', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--code', TEST_CODE]);
  // The port line comes first, then the code line.
  await rx.shows('ferry: code ');
  const port = Number(/port (\d+)/.exec(rx.screen())![1]);
  const tx = terminal(['send', file.path, '--to', `127.0.0.1:${port}`, '--limit-rate', '2M', '--retries', '0']);
  expect(await tx.exit(), tx.screen()).toBe(0);
  expect(await rx.exit(), rx.screen()).toBe(0);
  for (const [side, screen] of [
    ['sender', tx.screen()],
    ['receiver', rx.screen()],
  ] as const) {
    const drawn = percentages(screen, /moving\.bin/);
    const between = drawn.filter((p) => p > 0 && p < 100);
    // At 2 MiB/s the transfer takes about 3 s and bars redraw 10 times a second: several values in between, in order.
    expect(new Set(between).size, `${side} drew ${JSON.stringify(drawn)}`).toBeGreaterThanOrEqual(3);
    expect([...between].sort((a, b) => a - b), `${side} went backwards`).toEqual(between);
  }
});
