/**
 * The receiver's side of LAN discovery: about once a second, a 16-byte
 * announcement (wire.ts) to the multicast group and to the subnet broadcast
 * address of every interface the receiver can be reached on, so that
 * `ferry send --code CODE` without `--to` finds it (find.ts). The datagram
 * says nothing of the code (docs/security.md, section 12).
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ANNOUNCE_GROUP, ANNOUNCE_PORT, INSTANCE_ID_SIZE, encodeAnnouncement } from './wire.js';

/** One announcement a second: a sender started after the receiver waits a second at most. */
export const ANNOUNCE_INTERVAL_MS = 1000;

/** Instance ids of the receivers this process announces. */
const own = new Set<string>();

/** True for a receiver this very process announces: its own senders never take it for a peer (find.ts). */
export function isOwnInstance(instance: string): boolean {
  return own.has(instance);
}

export interface AnnounceOptions {
  /** The receiver's TCP port. */
  port: number;
  /** The address the receiver is bound to (as the socket reports it): a wildcard (or none) announces on every interface, an IPv4 address on its own interface only. */
  host?: string;
  /** UDP port announcements go to. Default ANNOUNCE_PORT (7878). */
  udpPort?: number;
  /** Default ANNOUNCE_INTERVAL_MS. */
  intervalMs?: number;
}

export interface Announcer {
  /** The random per-run id carried by every announcement. */
  readonly instance: string;
  /** Stops announcing (idempotent). */
  stop(): void;
}

/** Where one interface's announcements go, from which local address. */
interface Route {
  /** The interface's IPv4 address: IP_MULTICAST_IF for the group. */
  local: string;
  multicast: boolean;
  /** The subnet's broadcast address, when the subnet has one (/30 and wider). */
  broadcast: string | undefined;
}

/**
 * Starts announcing a receiver listening on `port`. Returns null when the
 * bound address is not one an IPv4 peer on the LAN can reach (an IPv6
 * address): nothing to announce.
 */
export function startAnnouncing(options: AnnounceOptions): Announcer | null {
  const only = boundIPv4(options.host);
  if (only === null) return null;
  const instance = randomBytes(INSTANCE_ID_SIZE).toString('hex');
  const datagram = encodeAnnouncement({ port: options.port, instance });
  const udpPort = options.udpPort ?? ANNOUNCE_PORT;
  const socket = createSocket({ type: 'udp4', reuseAddr: true });
  // A datagram that cannot go (no route, a firewall) is no reason to stop the receiver: the next tick tries again.
  socket.on('error', () => {});
  socket.unref();
  let stopped = false;
  let sending = false;
  const tick = async (): Promise<void> => {
    if (stopped || sending) return;
    sending = true;
    try {
      // Read again each time: an interface that comes up (Wi-Fi joins, DHCP answers) is announced on within a second.
      for (const route of routes(only)) {
        if (stopped) return;
        if (route.multicast && setInterface(socket, route.local)) await sendTo(socket, datagram, udpPort, ANNOUNCE_GROUP);
        if (route.broadcast !== undefined) await sendTo(socket, datagram, udpPort, route.broadcast);
      }
    } finally {
      sending = false;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  socket.bind(0, () => {
    if (stopped) return;
    socket.setBroadcast(true);
    // Link-local: no router forwards it further.
    socket.setMulticastTTL(1);
    // A sender on this same host hears it too.
    socket.setMulticastLoopback(true);
    void tick();
    timer = setInterval(() => void tick(), options.intervalMs ?? ANNOUNCE_INTERVAL_MS);
    timer.unref();
  });
  own.add(instance);
  return {
    instance,
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      own.delete(instance);
      socket.close();
    },
  };
}

/** undefined: every interface; an address: that one's interface only; null: none (an IPv6 address). */
function boundIPv4(host: string | undefined): string | undefined | null {
  if (host === undefined || host === '' || host === '::' || host === '0.0.0.0') return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)?.[1];
  const v4 = mapped ?? host;
  return isIPv4(v4) ? v4 : null;
}

/**
 * Every IPv4 interface but loopback; loopback when it is all there is (or
 * when the receiver is bound to it). Loopback has no multicast: it gets
 * 127.255.255.255, which a sender on the same host hears as well.
 */
function routes(only: string | undefined): Route[] {
  const all: { address: string; netmask: string; internal: boolean }[] = [];
  for (const entries of Object.values(networkInterfaces())) {
    for (const e of entries ?? []) if (e.family === 'IPv4') all.push(e);
  }
  const chosen = only !== undefined ? all.filter((e) => e.address === only) : all.some((e) => !e.internal) ? all.filter((e) => !e.internal) : all;
  return chosen.map((e) => ({ local: e.address, multicast: !e.internal, broadcast: broadcastOf(e.address, e.netmask) }));
}

/** a.b.c.d with every host bit set, or undefined for a /31 or /32 (no broadcast address there). */
export function broadcastOf(address: string, netmask: string): string | undefined {
  const a = toInt(address);
  const m = toInt(netmask);
  if (a === undefined || m === undefined || (~m >>> 0) < 3) return undefined;
  const b = (a | ~m) >>> 0;
  return [b >>> 24, (b >>> 16) & 255, (b >>> 8) & 255, b & 255].join('.');
}

function toInt(dotted: string): number | undefined {
  const parts = dotted.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(Number.isInteger(p) && p >= 0 && p <= 255))) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function setInterface(socket: Socket, local: string): boolean {
  try {
    socket.setMulticastInterface(local);
    return true;
  } catch {
    // The address went away since networkInterfaces() read it.
    return false;
  }
}

/** One datagram, waited for: setMulticastInterface() applies to the sends that follow it, so they go one at a time. */
function sendTo(socket: Socket, datagram: Buffer, port: number, address: string): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.send(datagram, port, address, () => resolve());
    } catch {
      resolve(); // the socket was closed by stop()
    }
  });
}
