/**
 * `ferry send` on a terminal with no code asks for it: the real CLI under a
 * pseudo-terminal (util-linux `script`), against a real receiver on loopback.
 * The test types into the terminal once the prompt shows.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { TEST_CODE, receiver } from './support/cli.js';
import { fingerprint, listing, tempDir, writeSample } from './support/files.js';
import { onTerminal as onPty } from './support/pty.js';

/** `ferry ARGS` on a fresh pseudo-terminal, FERRY_CODE unset. */
function onTerminal(args: string[]): ReturnType<typeof onPty> {
  const env = { ...process.env };
  delete env.FERRY_CODE;
  return onPty(args, { env });
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
