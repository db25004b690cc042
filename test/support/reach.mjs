#!/usr/bin/env node
/**
 * Who can reach whom: a TCP listener and a TCP connect, each a standalone
 * process to run inside a network namespace (`ip netns exec NS node
 * reach.mjs ...`), for test/support/star.ts.
 *
 *   node reach.mjs listen HOST NAME [LIFETIME_S]
 *     listens on HOST, port 0; prints {"event":"listening","host":...,"port":N};
 *     greets every connection with the line NAME and closes it. Exits by
 *     itself after LIFETIME_S seconds (default 60).
 *
 *   node reach.mjs connect HOST PORT MS
 *     connects and reads the greeting. Prints one line and exits:
 *     {"event":"connected","greeting":NAME} (exit 0), or
 *     {"event":"failed","code":"EHOSTUNREACH",...} / {"event":"timeout","ms":MS} (exit 1).
 */
import { connect, createServer } from 'node:net';

const [mode, ...rest] = process.argv.slice(2);

function print(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

if (mode === 'listen') {
  const [host, name, lifetime = '60'] = rest;
  if (!host || !name) throw new Error('usage: reach.mjs listen HOST NAME [LIFETIME_S]');
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`${name}\n`);
  });
  server.listen(0, host, () => print({ event: 'listening', host, port: server.address().port }));
  setTimeout(() => process.exit(0), Number(lifetime) * 1000).unref();
} else if (mode === 'connect') {
  const [host, port, ms] = rest;
  if (!host || !port || !ms) throw new Error('usage: reach.mjs connect HOST PORT MS');
  const socket = connect({ host, port: Number(port) });
  let text = '';
  const finish = (event, code) => {
    print(event);
    socket.destroy();
    process.exit(code);
  };
  const timer = setTimeout(() => finish({ event: 'timeout', ms: Number(ms) }, 1), Number(ms));
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    text += chunk;
    const nl = text.indexOf('\n');
    if (nl !== -1) {
      clearTimeout(timer);
      finish({ event: 'connected', greeting: text.slice(0, nl) }, 0);
    }
  });
  socket.on('error', (err) => {
    clearTimeout(timer);
    finish({ event: 'failed', code: err.code ?? 'ERROR', message: err.message }, 1);
  });
  socket.on('end', () => {
    clearTimeout(timer);
    finish({ event: 'failed', code: 'NO_GREETING', message: `closed after ${JSON.stringify(text)}` }, 1);
  });
} else {
  throw new Error('usage: reach.mjs listen HOST NAME | reach.mjs connect HOST PORT MS');
}
