/** The LAN announcement on bytes alone (docs/protocol.md, section 11). */
import { describe, expect, test } from 'vitest';
import { broadcastOf } from '../../src/discovery/announce.js';
import { ANNOUNCE_SIZE, encodeAnnouncement, parseAnnouncement } from '../../src/discovery/wire.js';

const INSTANCE = '0123456789abcdef';

describe('the announcement datagram', () => {
  test('is 16 bytes: "FERY", version 1, a reserved 0, the port (u16 big-endian), the instance id', () => {
    const bytes = encodeAnnouncement({ port: 7878, instance: INSTANCE });
    expect(bytes.toString('hex')).toBe('46455259' + '01' + '00' + '1ec6' + INSTANCE);
    expect(bytes.length).toBe(ANNOUNCE_SIZE);
    expect(parseAnnouncement(bytes)).toEqual({ port: 7878, instance: INSTANCE });
    expect(parseAnnouncement(encodeAnnouncement({ port: 1, instance: 'ffffffffffffffff' }))).toEqual({ port: 1, instance: 'ffffffffffffffff' });
    expect(parseAnnouncement(encodeAnnouncement({ port: 65535, instance: INSTANCE }))?.port).toBe(65535);
  });

  test('is parsed from a view into a larger buffer', () => {
    const wide = Buffer.concat([Buffer.from('xx'), encodeAnnouncement({ port: 9, instance: INSTANCE }), Buffer.from('yy')]);
    expect(parseAnnouncement(wide.subarray(2, 18))).toEqual({ port: 9, instance: INSTANCE });
  });

  test('carries nothing but what it is given: no code, nothing derived from one', () => {
    expect(() => encodeAnnouncement({ port: 0, instance: INSTANCE })).toThrow(RangeError);
    expect(() => encodeAnnouncement({ port: 70000, instance: INSTANCE })).toThrow(RangeError);
    expect(() => encodeAnnouncement({ port: 1, instance: 'not hex at all!!' })).toThrow(RangeError);
  });

  const good = encodeAnnouncement({ port: 7878, instance: INSTANCE });
  const flip = (at: number, value: number): Buffer => {
    const b = Buffer.from(good);
    b[at] = value;
    return b;
  };
  test.each([
    ['empty', Buffer.alloc(0)],
    ['one byte short', good.subarray(0, 15)],
    ['one byte long', Buffer.concat([good, Buffer.from([0])])],
    ['a ferry frame', Buffer.from('c8010001000000060000000001 02c9'.replace(/ /g, ''), 'hex')],
    ['another magic', flip(0, 0x66)],
    ['version 0', flip(4, 0)],
    ['version 2', flip(4, 2)],
    ['reserved byte set', flip(5, 1)],
    ['port 0', Buffer.concat([good.subarray(0, 6), Buffer.from([0, 0]), good.subarray(8)])],
    ['16 random-looking bytes', Buffer.from('9f3a0c77e1d2b4a6586f0e1d2c3b4a59', 'hex')],
  ])('junk is not an announcement: %s', (_what, bytes) => {
    expect(parseAnnouncement(bytes)).toBeUndefined();
  });
});

describe('the subnet broadcast address', () => {
  test.each([
    ['192.168.1.7', '255.255.255.0', '192.168.1.255'],
    ['10.1.2.3', '255.0.0.0', '10.255.255.255'],
    ['127.0.0.1', '255.0.0.0', '127.255.255.255'],
    ['10.201.5.1', '255.255.255.252', '10.201.5.3'],
    ['172.16.40.9', '255.255.240.0', '172.16.47.255'],
  ])('%s/%s: %s', (address, netmask, broadcast) => {
    expect(broadcastOf(address, netmask)).toBe(broadcast);
  });

  test('none on a /31 or /32, or for what is not an address', () => {
    expect(broadcastOf('10.0.0.1', '255.255.255.254')).toBeUndefined();
    expect(broadcastOf('10.0.0.1', '255.255.255.255')).toBeUndefined();
    expect(broadcastOf('fe80::1', 'ffff:ffff:ffff:ffff::')).toBeUndefined();
  });
});
