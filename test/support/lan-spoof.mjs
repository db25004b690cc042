#!/usr/bin/env node
/**
 * A forger on the LAN, for lan.netns.e2e.test.ts: announces itself as a
 * ferry receiver (the real 16-byte datagram, docs/protocol.md section 11)
 * every 200 ms, to the group and the subnet broadcast, and listens on TCP
 * without speaking: it records every byte a sender gives it.
 *
 *   node lan-spoof.mjs --host ADDR --broadcast ADDR [--lifetime S]
 *
 * Prints {"event":"listening","port":N}, then one {"event":"bytes","hex":...}
 * per connection when it closes. Exits after --lifetime seconds (default 60).
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
};
const host = arg('--host');
const broadcast = arg('--broadcast');
const lifetime = Number(arg('--lifetime', '60'));

setTimeout(() => process.exit(0), lifetime * 1000).unref();

const server = createServer((socket) => {
  const chunks = [];
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', () => {});
  socket.on('close', () => process.stdout.write(`${JSON.stringify({ event: 'bytes', hex: Buffer.concat(chunks).toString('hex') })}\n`));
});
server.listen(0, host, () => {
  const { port } = server.address();
  const datagram = Buffer.alloc(16);
  datagram.write('FERY', 0, 'ascii');
  datagram[4] = 1;
  datagram.writeUInt16BE(port, 6);
  randomBytes(8).copy(datagram, 8);
  const udp = createSocket('udp4');
  udp.bind(0, () => {
    udp.setBroadcast(true);
    udp.setMulticastInterface(host);
    setInterval(() => {
      udp.send(datagram, 7878, '239.255.78.78');
      udp.send(datagram, 7878, broadcast);
    }, 200);
    process.stdout.write(`${JSON.stringify({ event: 'listening', port })}\n`);
  });
});
