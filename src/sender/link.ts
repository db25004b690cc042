/**
 * How the sender gets the socket for each attempt (docs/protocol.md,
 * section 1): it dials the receiver (`--to`), takes a seat in a relay's
 * room (`--relay`), waits for the receiver to dial it (`--listen`), or
 * finds it on the LAN (none of them).
 * connect() returns the socket the session runs on, secured (TLS) unless
 * --insecure; whatever fails before that is "unreached" (wait.ts).
 *
 * The secure handshake's roles follow the TCP direction: the sender is its
 * client when it dials or meets the receiver through a relay, and its
 * server, with the receiver's defences (admission, the CodeGuard), when it
 * listens and strangers may connect.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { acceptor, listen } from '../accept.js';
import { findReceiver } from '../discovery/find.js';
import type { EventListener } from '../events.js';
import { exitCodeOf } from '../exit-codes.js';
import { FerryError, abortError } from '../protocol/errors.js';
import { Admission, type Ticket } from '../receiver/admission.js';
import { Seat, pairedPatiently, relayName, type RelayOptions } from '../relay/client.js';
import { SENDER_SIDE } from '../relay/wire.js';
import { CodeGuard, codeNumber, generateCode, prepareClient, secureClient } from '../secure/index.js';
import { dial } from './dial.js';

/** Before taking a seat the relay closed unpaired again: not at once, in case the relay closes every newcomer. */
const REJOIN_PAUSE_MS = 250;
/**
 * A sender that went first at a relay waits on after a wrong code, as a
 * listening receiver serves on: anyone may name its room (the number is
 * public there), and one stranger's guess should not end it. The fifth
 * wrong code does (exit 4): strangers get 5 guesses in all, 3.0 × 10⁻⁷
 * against the code's three words (docs/security.md, section 11.2).
 */
export const WRONG_CODES_GOING_FIRST = 5;

export interface Link {
  /** The socket for the next attempt; rejects when the receiver was not reached. */
  connect(): Promise<Socket>;
  /** Stops listening or waiting; the attempt in progress keeps its socket. */
  close(): void;
}

export interface LinkContext {
  timeoutMs: number;
  /** Absent: --insecure (or, for --listen and a relay without one, made by the link). */
  code: string | undefined;
  insecure: boolean;
  signal: AbortSignal | undefined;
  emit: EventListener;
}

/** `--to`: a TCP connect to the receiver, then the handshake as its client. */
export function directLink(target: { host: string; port: number }, ctx: LinkContext): Link {
  return {
    async connect() {
      const socket = await dial({ ...target, timeoutMs: ctx.timeoutMs, signal: ctx.signal });
      return ctx.code === undefined ? socket : secureClient(socket, ctx.code, { timeoutMs: ctx.timeoutMs, signal: ctx.signal });
    },
    close() {},
  };
}

/**
 * No --to, --relay or --listen: the first attempt finds the receiver on the
 * LAN (src/discovery/find.ts) and goes over the very connection that proved
 * the code; every retry dials the receiver found.
 */
export function lanLink(find: { findMs: number; udpPort: number | undefined }, ctx: LinkContext): Link {
  let found: Link | null = null;
  return {
    async connect() {
      if (found) return found.connect();
      const receiver = await findReceiver({ code: ctx.code!, findMs: find.findMs, timeoutMs: ctx.timeoutMs, signal: ctx.signal, udpPort: find.udpPort });
      found = directLink({ host: receiver.host, port: receiver.port }, ctx);
      ctx.emit({ event: 'found', host: receiver.host, port: receiver.port, candidates: receiver.candidates });
      return receiver.socket;
    },
    close() {},
  };
}

/**
 * `--relay`: a seat in a room, then the handshake as the receiver's client.
 * With a code the receiver is there first (the code's number is its room)
 * and is waited for at most the timeout. Without one the sender is first:
 * it asks the relay for a room, prints the code (the room's number, fresh
 * words), and waits as long as it takes. Every retry joins the same room.
 */
export function relayLink(relay: { host: string; port: number }, ctx: LinkContext): Link {
  const options: RelayOptions = { ...relay, timeoutMs: ctx.timeoutMs, signal: ctx.signal };
  let code = ctx.code;
  let seat: Seat | null = null;
  let closed = false;
  /**
   * Joins the room of `code` and waits for the receiver at most the timeout
   * in all. A seat the relay closes unpaired is taken again meanwhile: the
   * transit relay drops the other senders waiting in a room when it pairs
   * one (docs/protocol.md, section 10.5), and that is no wrong address.
   */
  async function joinWithin(code: string): Promise<Socket> {
    const deadline = performance.now() + ctx.timeoutMs;
    for (;;) {
      seat = await Seat.join(options, SENDER_SIDE, codeNumber(code));
      if (closed) seat.leave();
      try {
        return await seat.paired(Math.max(1, deadline - performance.now()), ctx.signal);
      } catch (err) {
        if (!(err instanceof FerryError) || err.code !== 'ERR_CONNECTION_LOST' || closed || deadline - performance.now() < REJOIN_PAUSE_MS) throw err;
        await sleep(REJOIN_PAUSE_MS, undefined, { signal: ctx.signal });
      }
    }
  }

  const wentFirst = code === undefined;
  let wrongCodes = 0;
  /** Going first, the sender waits as long as it takes, in the room it was given. */
  const waitAgain = async (code: string): Promise<Socket> => {
    seat = await Seat.join(options, SENDER_SIDE, codeNumber(code));
    return pairedPatiently(options, SENDER_SIDE, seat);
  };

  return {
    async connect() {
      let socket: Socket;
      if (code === undefined) {
        const first = await Seat.allocate(options, SENDER_SIDE);
        code = generateCode(first.nameplate);
        // The password hash (~50 ms) runs while the receiver is on its way.
        prepareClient(code);
        ctx.emit({ event: 'listening', relay: relayName(relay), code, side: 'send' });
        seat = first;
        socket = await pairedPatiently(options, SENDER_SIDE, first);
      } else {
        socket = await joinWithin(code);
      }
      for (;;) {
        seat = null;
        try {
          return await secureClient(socket, code, { timeoutMs: ctx.timeoutMs, signal: ctx.signal });
        } catch (err) {
          const why = err instanceof FerryError ? err.code : undefined;
          if (!wentFirst || closed || (why !== 'ERR_BAD_CODE' && why !== 'ERR_CONNECTION_LOST')) throw err;
          // A peer that left mid-handshake (a receiver's spare seat closing as it exits) proved nothing: wait on.
          if (why === 'ERR_BAD_CODE') {
            if (++wrongCodes >= WRONG_CODES_GOING_FIRST) throw err;
            const left = WRONG_CODES_GOING_FIRST - wrongCodes;
            const message = `a receiver at the relay gave a wrong code; nothing was sent; waiting on (${left} more wrong code${left === 1 ? '' : 's'} end this send)`;
            ctx.emit({ event: 'error', code: 'ERR_BAD_CODE', message, exitCode: exitCodeOf('ERR_BAD_CODE') });
          }
          socket = await waitAgain(code);
        }
      }
    },
    close() {
      closed = true;
      seat?.leave();
    },
  };
}

/**
 * `--listen`: binds, prints the address and the code, and hands each
 * attempt the next connection that proves the code. It takes one receiver
 * at a time: while an attempt's socket is open, or one waits for the next
 * attempt, further connections are closed. The first attempt waits as long
 * as it takes; a retry waits at most the timeout for the receiver to dial
 * again (`receive --from` does after a cut).
 */
export function listenLink(bindTo: { host: string | undefined; port: number }, ctx: LinkContext): Link {
  let server: Server | null = null;
  let guard: CodeGuard | undefined;
  let first = true;
  let busy = false;
  let closed = false;
  let ready: Socket | null = null;
  let waiter: ((socket: Socket) => void) | null = null;
  const handshaking = new Set<Socket>();
  const busyExit = exitCodeOf('ERR_BUSY');
  const admission = new Admission((_kind, message) => ctx.emit({ event: 'error', code: 'ERR_BUSY', message, exitCode: busyExit }));

  const hand = (secured: Socket, _plain: Socket, ticket?: Ticket): void => {
    // --insecure: nothing to prove; the first to connect is the receiver.
    ticket?.authenticated();
    if (waiter) {
      const give = waiter;
      waiter = null;
      give(secured);
    } else {
      ready = secured;
      secured.once('close', () => ready === secured && (ready = null));
    }
  };

  async function start(): Promise<void> {
    if (!ctx.insecure) guard = new CodeGuard(ctx.code ?? generateCode());
    void guard?.shareCheck().catch(() => {});
    const accept = acceptor({
      guard,
      timeoutMs: ctx.timeoutMs,
      admission,
      handshaking,
      emit: ctx.emit,
      peerRole: 'receiver',
      refusing: () => closed || busy || ready !== null,
      admitted: hand,
    });
    server = createServer(accept);
    const where = await listen(server, bindTo.host, bindTo.port);
    ctx.emit({ event: 'listening', host: where.host, port: where.port, ...(guard ? { code: guard.code } : { insecure: true as const }), side: 'send' });
  }

  function next(waitMs: number | undefined): Promise<Socket> {
    if (ready) {
      const socket = ready;
      ready = null;
      return Promise.resolve(socket);
    }
    return new Promise<Socket>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        waiter = null;
        clearTimeout(timer);
        reject(abortError(ctx.signal));
      };
      if (waitMs !== undefined) {
        timer = setTimeout(() => {
          waiter = null;
          ctx.signal?.removeEventListener('abort', onAbort);
          reject(new FerryError('ERR_TIMEOUT', `the receiver did not connect again within ${waitMs / 1000} s`));
        }, waitMs);
      }
      if (ctx.signal?.aborted) return onAbort();
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      waiter = (socket) => {
        clearTimeout(timer);
        ctx.signal?.removeEventListener('abort', onAbort);
        resolve(socket);
      };
    });
  }

  return {
    async connect() {
      if (server === null) await start();
      const socket = await next(first ? undefined : ctx.timeoutMs);
      first = false;
      busy = true;
      socket.once('close', () => (busy = false));
      return socket;
    },
    close() {
      closed = true;
      server?.close();
      ready?.destroy();
      for (const socket of handshaking) socket.destroy();
    },
  };
}
