/**
 * The magic-wormhole transit relay (Debian's magic-wormhole-transit-relay,
 * run by twist3), an independently written relay that speaks the pairing
 * line ferry uses: started on 127.0.0.1, port 0, and stopped after the test.
 * It announces its port in its JSON log ("Transit starting on N").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach } from 'vitest';

const started = new Set<ChildProcess>();
afterEach(() => {
  for (const child of started) child.kill('SIGKILL');
  started.clear();
});

export interface TransitRelay {
  port: number;
  /** Kills it (SIGKILL): every connection through it drops at once. Resolves once it has exited. */
  kill(): Promise<void>;
}

/** Starts the transit relay on `port` (0: the OS chooses); resolves once it listens. */
export function startTransitRelay(port = 0, ms = 15_000): Promise<TransitRelay> {
  const child = spawn('twist3', ['transitrelay', `--port=tcp:${port}:interface=127.0.0.1`], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`the transit relay did not start within ${ms} ms: ${log}`)), ms);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    child.once('error', (err) => fail(new Error(`cannot run twist3 (apt-get install magic-wormhole-transit-relay): ${err.message}`)));
    const early = (code: number | null): void => fail(new Error(`the transit relay exited ${code} before listening: ${log}`));
    child.once('exit', early);
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      const match = /Transit starting on (\d+)/.exec(log);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.stdout.resume();
      child.off('exit', early);
      resolve({
        port: Number(match[1]),
        kill: async () => {
          child.kill('SIGKILL');
          await exited;
        },
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  });
}
