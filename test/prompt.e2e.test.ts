/**
 * `ferry send` on a terminal with no code asks for it: the real CLI under a
 * pseudo-terminal (util-linux `script`), against a real receiver on loopback.
 * The test types into the terminal once the prompt shows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { CLI, TEST_CODE, receiver } from './support/cli.js';
import { fingerprint, listing, tempDir, within, writeSample } from './support/files.js';

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `ferry ARGS` with its stdin, stdout and stderr on a fresh pseudo-terminal; FERRY_CODE unset. */
function onTerminal(args: string[]): { screen(): string; type(text: string): void; shows(text: string): Promise<void>; exit(): Promise<number> } {
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const env = { ...process.env };
  delete env.FERRY_CODE;
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.add(child);
  let output = '';
  const watchers = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    for (const w of [...watchers]) w();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15))));
  return {
    screen: () => output,
    type: (text) => void child.stdin.write(text),
    shows: (text) =>
      within(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (!output.includes(text)) return;
            watchers.delete(check);
            resolve();
          };
          watchers.add(check);
          check();
        }),
        10_000,
        `${JSON.stringify(text)} on the terminal`,
      ),
    exit: () => within(exited, 15_000, 'ferry send to exit'),
  };
}

describe('the code prompt', () => {
  test('no code on a terminal: asks "code: ", the typed code works, the file arrives', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'typed.bin', 200_000);
    const rx = await receiver(dst, ['--once']);
    const tx = onTerminal(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--retries', '0']);
    await tx.shows('code: ');
    tx.type(`${TEST_CODE}\r`);
    expect(await tx.exit(), tx.screen()).toBe(0);
    expect(await rx.exit()).toBe(0);
    expect(tx.screen()).toMatch(/sent typed\.bin: .* verified by the receiver/);
    expect(fingerprint(await readFile(join(dst, 'typed.bin')))).toEqual(fingerprint(file.content));
  });

  test('a wrong code typed: refused like a wrong --code (exit 4), nothing written', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'wrong.bin', 10);
    const rx = await receiver(dst);
    const tx = onTerminal(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--retries', '0']);
    await tx.shows('code: ');
    tx.type('8-orbit-velvet-cactus\r');
    expect(await tx.exit(), tx.screen()).toBe(4);
    expect(await listing(dst)).toEqual([]);
  });

  test('an empty answer is a usage error (exit 2); Ctrl-C at the prompt exits 130', async () => {
    const empty = onTerminal(['send', '/nonexistent/f', '--to', '127.0.0.1:9']);
    await empty.shows('code: ');
    empty.type('\r');
    expect(await empty.exit(), empty.screen()).toBe(2);
    expect(empty.screen()).toContain('ferry: no code given');

    const interrupted = onTerminal(['send', '/nonexistent/f', '--to', '127.0.0.1:9']);
    await interrupted.shows('code: ');
    interrupted.type('\x03');
    expect(await interrupted.exit(), interrupted.screen()).toBe(130);
  });

  test('standard input sent as - is not asked: the usage error, as without a terminal', async () => {
    const tx = onTerminal(['send', '-', '--name', 'x', '--to', '127.0.0.1:9']);
    expect(await tx.exit(), tx.screen()).toBe(2);
    expect(tx.screen()).not.toContain('code: ');
    expect(tx.screen()).toContain('give the code the receiver printed');
  });
});
