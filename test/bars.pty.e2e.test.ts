/**
 * The progress bars as a person sees them: the real CLI on a pseudo-terminal
 * (util-linux `script`), both sides, a transfer held to a known rate so the
 * bar has time to move. Issue: the sender's bar sat at 0% for a whole
 * transfer while the receiver's moved.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, expect, test } from 'vitest';
import { CLI, TEST_CODE } from './support/cli.js';
import { tempDir, within, writeSample } from './support/files.js';

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `ferry ARGS` on a fresh pseudo-terminal; resolves with everything it drew once it exits. */
function onTerminal(args: string[], onOutput: (all: string) => void = () => {}): { output(): string; exit(): Promise<number> } {
  const child = spawn('script', ['-qec', [process.execPath, CLI, ...args].map(quote).join(' '), '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, FERRY_CODE: TEST_CODE, COLUMNS: '120' },
  });
  children.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    onOutput(output);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  return { output: () => output, exit: () => within(exited, 30_000, `ferry ${args[0]} to exit`) };
}

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
  let port = 0;
  let announced: () => void = () => {};
  const listening = new Promise<void>((resolve) => (announced = resolve));
  const rx = onTerminal(['receive', '--once', '--host', '127.0.0.1', '--port', '0', '--dir', dst, '--code', TEST_CODE], (all) => {
    const m = /port (\d+)/.exec(all);
    if (m && port === 0) {
      port = Number(m[1]);
      announced();
    }
  });
  await within(listening, 10_000, 'the receiver to print its port');
  const tx = onTerminal(['send', file.path, '--to', `127.0.0.1:${port}`, '--limit-rate', '2M', '--retries', '0']);
  expect(await tx.exit(), tx.output()).toBe(0);
  expect(await rx.exit(), rx.output()).toBe(0);
  for (const [side, screen] of [
    ['sender', tx.output()],
    ['receiver', rx.output()],
  ] as const) {
    const drawn = percentages(screen, /moving\.bin/);
    const between = drawn.filter((p) => p > 0 && p < 100);
    // At 2 MiB/s the transfer takes about 3 s and bars redraw 10 times a second: several values in between, in order.
    expect(new Set(between).size, `${side} drew ${JSON.stringify(drawn)}`).toBeGreaterThanOrEqual(3);
    expect([...between].sort((a, b) => a - b), `${side} went backwards`).toEqual(between);
  }
});
