/**
 * The TLS 1.3 part of the secure handshake (docs/security.md, section 3.2):
 * an external PSK derived from SPAKE2's Ke, no certificate on either side,
 * ECDHE on top; node:tls (OpenSSL) does the record layer.
 */
import { hkdfSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { formatPeer } from '../connection.js';
import { FerryError } from '../protocol/errors.js';

/** The one PSK identity ferry offers and accepts: the key, not the name, is the secret. */
export const PSK_IDENTITY = 'ferry';
/** HKDF info for the TLS PSK, derived from SPAKE2's Ke (never used directly). */
const PSK_INFO = 'ferry tls psk v1';
const PSK_BYTES = 32;

/**
 * TLS 1.3 suites, in preference order (the client's order decides). node's
 * PSK callbacks key a SHA-256 PSK, so only SHA-256 suites can use it (with
 * TLS_AES_256_GCM_SHA384 alone the handshake fails). AES-128-GCM first: with
 * AES-NI one core seals ~15% more with it than with ChaCha20-Poly1305 here;
 * end to end over loopback the two are within noise (docs/security.md, 7).
 */
export const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

/** The TLS PSK for a SPAKE2 session key: HKDF-SHA256(ikm = Ke, salt = empty, info = "ferry tls psk v1", 32 bytes). */
export function tlsPsk(Ke: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', Ke, Buffer.alloc(0), PSK_INFO, PSK_BYTES));
}

const TLS_SETTINGS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: TLS_CIPHERS,
} as const;

/** A TLS handshake under way: the socket when it exists already, and its outcome. */
export interface SecuredTls {
  socket: TLSSocket | null;
  done: Promise<TLSSocket>;
}

/**
 * 'secure' and friends fire on OpenSSL's stack, and microtasks run before it
 * unwinds: a caller that then destroyed the plain socket and the TLS one (in
 * that order) would free the SSL object under OpenSSL, a segfault in node 20.
 * Handing the socket over a macrotask later keeps every caller off that stack.
 */
function settle(resolve: (socket: TLSSocket) => void, socket: TLSSocket): void {
  setImmediate(resolve, socket);
}

/**
 * Receiver: TLS server over the plain socket, through a tls.Server that never
 * listens (the documented way to inject a connection). Unlike a bare
 * `new TLSSocket({ isServer: true })`, a socket a server hands over reports
 * TLS errors after the handshake (a tampered record) as 'error' events.
 */
export function acceptTls(socket: Socket, psk: Buffer, timeoutMs: number): SecuredTls {
  const server = createTlsServer({
    ...TLS_SETTINGS,
    handshakeTimeout: timeoutMs,
    // No certificate: a handshake that does not use our PSK cannot complete.
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? psk : null),
  });
  const peer = formatPeer(socket.remoteAddress, socket.remotePort);
  const done = new Promise<TLSSocket>((resolve, reject) => {
    server.once('secureConnection', (tlsSocket: TLSSocket) => settle(resolve, tlsSocket));
    server.once('tlsClientError', (err: NodeJS.ErrnoException) => reject(tlsFailure(err, peer)));
  });
  server.emit('connection', socket);
  return { socket: null, done };
}

/** Sender: TLS client over the plain socket. */
export function connectTls(socket: Socket, psk: Buffer): SecuredTls {
  const tlsSocket = tlsConnect({
    socket,
    ...TLS_SETTINGS,
    // No SNI: there is no name to protect or announce.
    servername: '',
    pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
    // Only called for a certificate-authenticated (non-PSK) session: never ours.
    checkServerIdentity: () => new Error('ferry expects a session keyed by the code, not a certificate'),
  });
  const peer = formatPeer(socket.remoteAddress, socket.remotePort);
  const done = new Promise<TLSSocket>((resolve, reject) => {
    tlsSocket.once('secureConnect', () => settle(resolve, tlsSocket));
    tlsSocket.once('error', (err: NodeJS.ErrnoException) => reject(tlsFailure(err, peer)));
    tlsSocket.once('close', () => reject(new FerryError('ERR_CONNECTION_LOST', `${peer} closed the connection during the TLS handshake`)));
  });
  return { socket: tlsSocket, done };
}

function tlsFailure(err: NodeJS.ErrnoException, peer: string): FerryError {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
    return new FerryError('ERR_CONNECTION_LOST', `connection to ${peer} lost during the TLS handshake: ${err.code}`, { cause: err });
  }
  return new FerryError('ERR_TRANSFER', `TLS handshake with ${peer} failed: ${err.code ?? err.message}`, { cause: err });
}
