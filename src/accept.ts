/**
 * The accept path of whichever side takes connections from strangers: a
 * receiver (on its port, or paired through a relay) and a sender that
 * listens (`send --listen`). Each connection gets a place in the admission
 * budget (or is closed), then the secure handshake against the side's
 * CodeGuard (the wrong-code limiter), and only a connection that proved the
 * code is handed on (docs/security.md, sections 5 and 8). With --insecure
 * there is no handshake: the plain socket is handed on with its ticket, to
 * be authenticated at its HELLO. listen() binds the server the handler
 * serves.
 */
import type { Server, Socket } from 'node:net';
import { formatPeer } from './connection.js';
import type { EventListener } from './events.js';
import { exitCodeOf } from './exit-codes.js';
import { FerryError, toFerryError } from './protocol/errors.js';
import type { Admission, Ticket } from './receiver/admission.js';
import { secureServer, type CodeGuard } from './secure/index.js';

export interface AcceptDeps {
  /** Absent: --insecure. */
  guard: CodeGuard | undefined;
  timeoutMs: number;
  admission: Admission;
  /** Sockets still in the secure handshake: the owner closes them when it stops. */
  handshaking: Set<Socket>;
  emit: EventListener;
  /** True while no connection is wanted (closing, or a --once side whose peer has arrived). */
  refusing(): boolean;
  /**
   * A connection that proved the code: `secured` is its TLS socket and
   * `plain` the TCP socket under it. With --insecure, both are the plain
   * socket and `ticket` is still to be authenticated.
   */
  admitted(secured: Socket, plain: Socket, ticket?: Ticket): void;
  /** The peer's part in the transfer, for the handshake's messages (the listening sender's peer receives). */
  peerRole?: 'sender' | 'receiver';
  /** Told of each failed handshake (a side that serves one peer ends on a wrong code). */
  rejected?: ((err: FerryError) => void) | undefined;
}

/** The handler for each connection accepted (a server's 'connection', or a socket a relay paired). */
export function acceptor(deps: AcceptDeps): (socket: Socket) => void {
  const { guard, admission, handshaking, emit } = deps;
  const failed = (socket: Socket, ticket: Ticket, err: unknown): void => {
    handshaking.delete(socket);
    ticket.ending();
    const e = toFerryError(err);
    deps.rejected?.(e);
    // Admission closed it and said so, once for many.
    if (ticket.dropped) return;
    const allowed = admission.log.allow(`handshake ${e.code}`);
    if (!allowed) return;
    const peer = formatPeer(socket.remoteAddress, socket.remotePort);
    // A stranger's wrong code is worth a line (a flood of them, a few lines); this side serves on.
    const message = e.code === 'ERR_BAD_CODE' ? `${peer} gave a wrong code; nothing was transferred` : `${peer}: ${e.message}`;
    emit({ event: 'error', code: e.code, message: message + allowed.suffix, exitCode: exitCodeOf(e.code), peer });
  };
  return (socket) => {
    if (deps.refusing()) {
      socket.destroy();
      return;
    }
    const ticket = admission.admit(socket.remoteAddress, () => socket.destroy());
    if (!ticket) {
      socket.destroy();
      return;
    }
    socket.once('close', ticket.release);
    if (!guard) {
      deps.admitted(socket, socket, ticket);
      return;
    }
    handshaking.add(socket);
    secureServer(socket, guard, {
      timeoutMs: deps.timeoutMs,
      totalMs: admission.handshakeMs,
      onFirstFrame: ticket.framed,
      onWaiting: ticket.waiting,
      ...(deps.peerRole ? { peerRole: deps.peerRole } : {}),
    }).then(
      (tls) => {
        ticket.authenticated();
        handshaking.delete(socket);
        if (deps.refusing()) tls.destroy();
        else deps.admitted(tls, socket);
      },
      (err: unknown) => failed(socket, ticket, err),
    );
  };
}

/**
 * Binds the server. With no host, listens on '::' with IPv4 mapped in (all
 * interfaces, both families), falling back to 0.0.0.0 where IPv6 is off.
 */
export async function listen(server: Server, host: string | undefined, port: number): Promise<{ host: string; port: number }> {
  const attempt = (bindHost: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host: bindHost, port, ipv6Only: false }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    try {
      await attempt(host ?? '::');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (host !== undefined || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
      await attempt('0.0.0.0');
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${host ?? 'all interfaces'} port ${port}`;
    const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'no such local address' : code ?? String(err);
    throw new FerryError('ERR_LISTEN', `cannot listen on ${where}: ${why}`, { cause: toFerryError(err) });
  }
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new FerryError('ERR_LISTEN', 'the server has no address');
  return { host: bound.address, port: bound.port };
}
