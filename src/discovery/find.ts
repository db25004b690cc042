/**
 * The sender's side of LAN discovery: listens for announcements (wire.ts)
 * for a bounded time and tries each announced receiver, as it is heard,
 * with the code, through the normal secure handshake. The first that proves
 * it holds the code is the receiver; nothing is sent to any other
 * (docs/security.md, section 12).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import type { TLSSocket } from 'node:tls';
import { networkInterfaces } from 'node:os';
import { FerryError, abortError, toFerryError } from '../protocol/errors.js';
import { secureClient } from '../secure/index.js';
import { dial } from '../sender/dial.js';
import { isOwnInstance } from './announce.js';
import { ANNOUNCE_GROUP, ANNOUNCE_PORT, parseAnnouncement } from './wire.js';

/** How long a sender listens by default (`--find-timeout`): receivers announce every second, so this hears each about three times. */
export const DEFAULT_FIND_MS = 3000;
/**
 * Receivers a sender tries at most, whatever the LAN sends it: each try
 * hands its peer one online guess at the code (docs/security.md, section
 * 11), so a forger announcing many receivers gets at most this many per
 * send; a flood costs at most this many handshakes (side by side, each
 * bounded by the timeout). A LAN segment rarely has more ferry receivers.
 */
export const MAX_CANDIDATES = 8;

export interface FindOptions {
  code: string;
  /** How long to listen for announcements. Tries under way when it ends still finish. */
  findMs: number;
  /** Bound on each try's connect and on each wait of its handshake. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** UDP port to listen on. Default ANNOUNCE_PORT (7878). */
  udpPort?: number | undefined;
  /** Default MAX_CANDIDATES. */
  maxCandidates?: number | undefined;
  /** Announcements to pass over. Default: those of receivers in this same process (isOwnInstance). */
  ignore?: ((instance: string) => boolean) | undefined;
}

export interface Found {
  /** The address the announcement came from. */
  host: string;
  /** The announced TCP port. */
  port: number;
  /** The connection that proved the code: the first attempt sends over it. */
  socket: TLSSocket;
  /** Receivers tried (distinct instance ids) until this one was chosen, this one included. */
  candidates: number;
}

/** One receiver heard: its instance id, and how trying it went. */
interface Candidate {
  state: 'trying' | 'failed';
  error?: FerryError;
}

/**
 * Finds the receiver holding `code` on the LAN. Throws ERR_BAD_CODE when
 * every receiver that answered refused the code, ERR_RATE_LIMITED when
 * they only said "later", otherwise ERR_NO_RECEIVER; or the abort reason.
 */
export function findReceiver(options: FindOptions): Promise<Found> {
  const maxCandidates = options.maxCandidates ?? MAX_CANDIDATES;
  const ignore = options.ignore ?? isOwnInstance;
  const candidates = new Map<string, Candidate>();
  /** `instance@address` pairs tried: at most maxCandidates of them. */
  const tried = new Set<string>();
  let listening = true;
  const losers = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, losers.signal]) : losers.signal;

  return new Promise<Found>((resolve, reject) => {
    let settled = false;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    const stopListening = (): void => {
      if (!listening) return;
      listening = false;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // Never bound (the port could not be had): nothing to close.
      }
    };
    const settle = (outcome: { found: Found } | { error: FerryError }): void => {
      if (settled) {
        if ('found' in outcome) outcome.found.socket.destroy();
        return;
      }
      settled = true;
      stopListening();
      options.signal?.removeEventListener('abort', onAbort);
      // The other tries stop; a receiver in the middle of one sees the handshake cut.
      losers.abort(new FerryError('ERR_SHUTDOWN', 'the sender has stopped looking for its receiver'));
      if ('found' in outcome) resolve(outcome.found);
      else reject(outcome.error);
    };
    /** After the listening time, with no try left under way: the verdict. */
    const maybeDone = (): void => {
      if (listening || settled || [...candidates.values()].some((c) => c.state === 'trying')) return;
      settle({ error: notFound([...candidates.values()].map((c) => c.error!), options.findMs) });
    };
    const onAbort = (): void => settle({ error: abortError(options.signal) });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      stopListening();
      maybeDone();
    }, options.findMs);

    const tryCandidate = async (instance: string, host: string, port: number): Promise<void> => {
      const candidate: Candidate = { state: 'trying' };
      candidates.set(instance, candidate);
      try {
        const tcp = await dial({ host, port, timeoutMs: options.timeoutMs, signal });
        const tls = await secureClient(tcp, options.code, { timeoutMs: options.timeoutMs, signal });
        settle({ found: { host, port, socket: tls, candidates: candidates.size } });
      } catch (err) {
        candidate.state = 'failed';
        candidate.error = toFerryError(err);
        maybeDone();
      }
    };

    socket.on('message', (datagram: Buffer, from: RemoteInfo) => {
      if (settled) return;
      const heard = parseAnnouncement(datagram);
      if (!heard || ignore(heard.instance)) return;
      const known = candidates.get(heard.instance);
      // Heard again (each second, or on a second interface): one try per receiver, another address only if the first was unreachable.
      if (known && (known.state === 'trying' || !unreachable(known.error!))) return;
      const key = `${heard.instance}@${from.address}`;
      if (tried.has(key) || tried.size >= maxCandidates) return;
      tried.add(key);
      void tryCandidate(heard.instance, from.address, heard.port);
    });
    socket.on('error', (err) => settle({ error: new FerryError('ERR_LISTEN', `cannot listen for receivers on UDP port ${options.udpPort ?? ANNOUNCE_PORT}: ${err.message}`, { cause: err }) }));
    socket.bind(options.udpPort ?? ANNOUNCE_PORT, () => {
      if (!listening) return;
      for (const local of multicastInterfaces()) {
        try {
          socket.addMembership(ANNOUNCE_GROUP, local);
        } catch {
          // Gone since it was listed, or no multicast there: broadcasts still reach this socket.
        }
      }
    });
    if (options.signal?.aborted) onAbort();
  });
}

/** Local IPv4 addresses of the interfaces that can carry multicast (loopback cannot: receivers there broadcast). */
function multicastInterfaces(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .filter((e) => e.family === 'IPv4' && !e.internal)
    .map((e) => e.address);
}

function unreachable(error: FerryError): boolean {
  return error.code === 'ERR_CONNECT' || error.code === 'ERR_TIMEOUT' || error.code === 'ERR_CONNECTION_LOST' || error.code === 'ERR_TRUNCATED';
}

/** Why no receiver was found: a wrong code if any receiver refused it, "later" if one said so, otherwise nobody answered. */
function notFound(errors: readonly FerryError[], findMs: number): FerryError {
  const heard = `${errors.length} receiver${errors.length === 1 ? '' : 's'} on the LAN`;
  if (errors.some((e) => e.code === 'ERR_BAD_CODE')) {
    return new FerryError('ERR_BAD_CODE', `wrong code: ${heard}, none with this code; nothing was sent`);
  }
  const limited = errors.find((e) => e.code === 'ERR_RATE_LIMITED');
  if (limited) return limited;
  if (errors.length === 0) {
    return new FerryError('ERR_NO_RECEIVER', `no receiver found on the LAN in ${findMs / 1000} s (is \`ferry receive\` running on this network? else use --to HOST)`);
  }
  return new FerryError('ERR_NO_RECEIVER', `${heard}, none reachable (${errors[0]!.message}); nothing was sent`);
}
