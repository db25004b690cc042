/**
 * The LAN announcement datagram (docs/protocol.md, section 11): pure encode
 * and parse, no sockets. What it carries is chosen so that it tells a
 * listener nothing about the receiver's code (docs/security.md, section 12):
 * a magic, a version, the receiver's TCP port and a random per-run id.
 */

/** IPv4 multicast group of the announcements: in 239.255.0.0/16, the administratively scoped "IPv4 Local Scope" (RFC 2365), never routed off the site. */
export const ANNOUNCE_GROUP = '239.255.78.78';
/** UDP port the announcements go to (and senders listen on); the same number as the receiver's default TCP port, in UDP's own space. */
export const ANNOUNCE_PORT = 7878;
/** `F E R Y`: tells a ferry announcement from any other datagram sent to the port. */
export const ANNOUNCE_MAGIC = Buffer.from('FERY', 'ascii');
export const ANNOUNCE_VERSION = 1;
/** magic (4) + version (1) + reserved (1) + port (2) + instance id (8): a datagram of any other size is not an announcement. */
export const ANNOUNCE_SIZE = 16;
export const INSTANCE_ID_SIZE = 8;

export interface Announcement {
  /** The receiver's TCP port, 1..65535. */
  port: number;
  /** 8 random bytes drawn once per receiver run, as 16 lower-case hex digits: tells two receivers on one address apart, and one receiver seen on two interfaces as one. */
  instance: string;
}

/** The 16 bytes a receiver sends. */
export function encodeAnnouncement({ port, instance }: Announcement): Buffer {
  if (!(Number.isInteger(port) && port >= 1 && port <= 0xffff)) throw new RangeError(`announced port ${port} is not 1..65535`);
  if (!/^[0-9a-f]{16}$/.test(instance)) throw new RangeError('instance id must be 16 lower-case hex digits');
  const datagram = Buffer.alloc(ANNOUNCE_SIZE);
  ANNOUNCE_MAGIC.copy(datagram, 0);
  datagram[4] = ANNOUNCE_VERSION;
  // datagram[5]: reserved, 0.
  datagram.writeUInt16BE(port, 6);
  datagram.write(instance, 8, 'hex');
  return datagram;
}

/**
 * The announcement a datagram carries, or undefined for anything else:
 * another size, another magic or version, a reserved byte not 0, port 0.
 * Anyone on the LAN can send to the port; nothing here throws.
 */
export function parseAnnouncement(datagram: Uint8Array): Announcement | undefined {
  if (datagram.length !== ANNOUNCE_SIZE) return undefined;
  const bytes = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.length);
  if (!bytes.subarray(0, 4).equals(ANNOUNCE_MAGIC) || bytes[4] !== ANNOUNCE_VERSION || bytes[5] !== 0) return undefined;
  const port = bytes.readUInt16BE(6);
  if (port === 0) return undefined;
  return { port, instance: bytes.toString('hex', 8, 16) };
}
