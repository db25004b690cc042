/** The TCP connect to the receiver, bounded by the timeout and the abort signal. */
import { connect as netConnect, type Socket } from 'node:net';
import { FerryError, abortError } from '../protocol/errors.js';

export interface DialOptions {
  host: string;
  port: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** What refuses a connection there when nothing listens (default: the receiver). */
  expecting?: string;
}

/** Connects; errors become one clear ERR_CONNECT (or ERR_TIMEOUT, or the signal's reason). */
export function dial({ host, port, timeoutMs, signal, expecting = '`ferry receive`' }: DialOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FerryError('ERR_TIMEOUT', `cannot connect to ${where}: no answer in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const onAbort = (): void => {
      socket.destroy();
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const why = err.code === 'ECONNREFUSED' ? `connection refused (is ${expecting} running there?)` : err.code ?? err.message;
      reject(new FerryError('ERR_CONNECT', `cannot connect to ${where}: ${why}`, { cause: err }));
    });
  });
}
