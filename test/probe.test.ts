/**
 * The receiver's answers to probes (docs/protocol.md, section 5.3), from a
 * raw peer: OK with the digest of the file it holds when size and mtime
 * match, ERR_NOT_HELD otherwise, the refusal the offer itself would get
 * for a bad name; in offer order with eager offers; and nothing written,
 * no folder made. Then REPLACE: refused ERR_EXISTS unless the receiver
 * allows updates, and with --allow-update the old file replaced whole.
 */
import { mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { receive, type Receiver } from '../src/index.js';
import { FrameType, HashId, OfferFlag } from '../src/protocol/constants.js';
import { encodeBye, encodeEnd, encodeFrame, encodeHello, encodeOffer, payloadOf } from '../src/protocol/messages.js';
import { listing, sha256, tempDir } from './support/files.js';
import { rawConnect, type RawPeer } from './support/raw.js';

const MTIME = 1_700_000_000_123;
const HELD = Buffer.from('the file the receiver holds\n');

let rx: Receiver | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
});

/** A receiver whose --dir holds `held.txt` (HELD, mtime MTIME), a hidden folder it did not make, and a link. */
async function start(options: { allowUpdate?: boolean } = {}): Promise<{ dir: string; outside: string }> {
  const dir = await tempDir();
  const outside = await tempDir();
  await writeFile(join(dir, 'held.txt'), HELD);
  await utimes(join(dir, 'held.txt'), MTIME / 1000, MTIME / 1000);
  await mkdir(join(dir, 'proj', '.git'), { recursive: true });
  await writeFile(join(dir, 'proj', '.git', 'config'), HELD);
  await utimes(join(dir, 'proj', '.git', 'config'), MTIME / 1000, MTIME / 1000);
  await writeFile(join(outside, 'secret'), HELD);
  await utimes(join(outside, 'secret'), MTIME / 1000, MTIME / 1000);
  await symlink(join(outside, 'secret'), join(dir, 'link.txt'));
  rx = await receive({ insecure: true, dir, host: '127.0.0.1', port: 0, timeoutMs: 10_000, ...options });
  return { dir, outside };
}

async function session(): Promise<RawPeer> {
  const peer = await rawConnect(rx!.port);
  peer.send(encodeHello([HashId.Sha256]));
  expect(await peer.frame(0)).toMatchObject({ type: FrameType.Hello });
  return peer;
}

const probe = (name: string, size = HELD.length, mtimeMs = MTIME): Buffer => encodeOffer({ size, mtimeMs, mode: 0o644, algorithm: HashId.Sha256, name, flags: OfferFlag.Probe });

/** OFFER, DATA and END of an eager file, as a correct sender sends them. */
function eager(name: string, content: Buffer, flags = OfferFlag.Eager): Buffer {
  const offer = encodeOffer({ size: content.length, mtimeMs: MTIME, mode: 0o644, algorithm: HashId.Sha256, name, flags });
  const end = encodeEnd(Buffer.from(sha256(content), 'hex'), Buffer.from(sha256(payloadOf(offer)), 'hex'));
  return Buffer.concat([offer, encodeFrame(FrameType.Data, content), end]);
}

async function bye(peer: RawPeer): Promise<void> {
  peer.send(encodeBye());
  await peer.closed();
}

describe('probes', () => {
  test('answered in offer order: OK with the digest of the held file, ERR_NOT_HELD for another size, another mtime, a missing name or folder; nothing written', async () => {
    const { dir } = await start();
    const before = await listing(dir);
    const peer = await session();
    peer.send(probe('held.txt'));
    peer.send(probe('held.txt', HELD.length + 1));
    peer.send(probe('held.txt', HELD.length, MTIME + 1000));
    peer.send(probe('missing.txt'));
    peer.send(probe('no/such/folder/x.txt'));
    expect(await peer.frame(1)).toEqual({ type: FrameType.Verdict, code: 'OK', digest: sha256(HELD), message: '' });
    for (let n = 2; n <= 5; n++) expect(await peer.frame(n)).toEqual({ type: FrameType.Verdict, code: 'ERR_NOT_HELD', digest: '', message: '' });
    await bye(peer);
    // A probe makes no folder and writes nothing.
    expect(await listing(dir)).toEqual(before);
    expect(await readFile(join(dir, 'held.txt'))).toEqual(HELD);
  });

  test('a link and a hidden folder the receiver did not make are not looked into: ERR_NOT_HELD', async () => {
    await start();
    const peer = await session();
    peer.send(probe('link.txt'));
    peer.send(probe('proj/.git/config'));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_NOT_HELD', digest: '' });
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_NOT_HELD', digest: '' });
    await bye(peer);
  });

  test('a name the receiver refuses gets that refusal; probes and eager offers share one order; the session goes on', async () => {
    const { dir } = await start();
    const peer = await session();
    peer.send(probe('../escape.txt'));
    peer.send(eager('new.txt', Buffer.from('new\n')));
    peer.send(probe('held.txt'));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_BAD_NAME' });
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK', digest: sha256(Buffer.from('new\n')) });
    expect(await peer.frame(3)).toMatchObject({ type: FrameType.Verdict, code: 'OK', digest: sha256(HELD) });
    await bye(peer);
    expect(await readFile(join(dir, 'new.txt'), 'utf8')).toBe('new\n');
  });
});

describe('a probe of a folder', () => {
  /** One file's part of a folder digest, as protocol.md 5.3 lays it out. */
  function item(path: string, content: Buffer, mtimeMs: number): Buffer {
    const fixed = Buffer.alloc(16);
    fixed.writeBigUInt64BE(BigInt(content.length), 0);
    fixed.writeBigInt64BE(BigInt(mtimeMs), 8);
    const length = Buffer.alloc(2);
    length.writeUInt16BE(Buffer.byteLength(path), 0);
    return Buffer.concat([length, Buffer.from(path), fixed, Buffer.from(sha256(content), 'hex')]);
  }

  test('OK with the digest over every file below it, in byte order of their paths (links and partial files left out); for a missing folder OK with the digest of no file; ERR_NOT_HELD for one holding a hidden folder the receiver did not make', async () => {
    const { dir } = await start();
    // Whole seconds: utimes() of a fraction may land a nanosecond under the millisecond, which the digest truncates.
    const T = 1_700_000_000_000;
    const a = Buffer.from('first\n');
    const b = Buffer.from('second, deeper\n');
    await mkdir(join(dir, 'album', 'sub'), { recursive: true });
    await writeFile(join(dir, 'album', 'sub', 'b'), b);
    await utimes(join(dir, 'album', 'sub', 'b'), (T + 2000) / 1000, (T + 2000) / 1000);
    await writeFile(join(dir, 'album', 'a.txt'), a);
    await utimes(join(dir, 'album', 'a.txt'), T / 1000, T / 1000);
    await symlink(join(dir, 'held.txt'), join(dir, 'album', 'link'));
    await writeFile(join(dir, 'album', `.ferry-${'0'.repeat(32)}.part`), 'partial');
    const peer = await session();
    const folderProbe = (name: string): Buffer => encodeOffer({ size: 0, mtimeMs: MTIME, mode: 0o755, algorithm: HashId.Sha256, name, flags: OfferFlag.Probe | OfferFlag.Directory });
    peer.send(folderProbe('album'));
    peer.send(folderProbe('proj'));
    peer.send(folderProbe('nope'));
    // 'a.txt' before 'sub/b': byte order of the whole relative path.
    const expected = sha256(Buffer.concat([item('a.txt', a, T), item('sub/b', b, T + 2000)]));
    expect(await peer.frame(1)).toEqual({ type: FrameType.Verdict, code: 'OK', digest: expected, message: '' });
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_NOT_HELD', digest: '' });
    // Nothing is held below a folder that is not there: the sender may send its files without a probe each.
    expect(await peer.frame(3)).toEqual({ type: FrameType.Verdict, code: 'OK', digest: sha256(Buffer.alloc(0)), message: '' });
    await bye(peer);
    expect(await listing(dir)).not.toContain('nope');
  });
});

describe('REPLACE', () => {
  const changed = Buffer.from('the new content of the file\n');

  test('without --allow-update, an existing name is refused ERR_EXISTS whatever the sender asks, and the old file kept', async () => {
    const { dir } = await start();
    const peer = await session();
    peer.send(eager('held.txt', changed, OfferFlag.Eager | OfferFlag.Replace));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_EXISTS' });
    await bye(peer);
    expect(await readFile(join(dir, 'held.txt'))).toEqual(HELD);
  });

  test('with --allow-update, REPLACE replaces the file once verified; without the flag it is still refused', async () => {
    const { dir } = await start({ allowUpdate: true });
    const peer = await session();
    peer.send(eager('held.txt', changed, OfferFlag.Eager));
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_EXISTS' });
    peer.send(eager('held.txt', changed, OfferFlag.Eager | OfferFlag.Replace));
    expect(await peer.frame(2)).toMatchObject({ type: FrameType.Verdict, code: 'OK', digest: sha256(changed) });
    await bye(peer);
    expect(await readFile(join(dir, 'held.txt'))).toEqual(changed);
    expect((await listing(dir)).filter((n) => n.startsWith('.ferry-'))).toEqual([]);
  });

  test('with --allow-update, a REPLACE whose data does not verify leaves the old file whole', async () => {
    const { dir } = await start({ allowUpdate: true });
    const peer = await session();
    const frames = eager('held.txt', changed, OfferFlag.Eager | OfferFlag.Replace);
    // Flip one byte of the DATA payload (after the OFFER frame and the DATA header).
    const offerLength = encodeOffer({ size: 1, mtimeMs: 0, mode: 0, algorithm: 2, name: 'held.txt' }).length;
    frames[offerLength + 8]! ^= 0x01;
    peer.send(frames);
    expect(await peer.frame(1)).toMatchObject({ type: FrameType.Verdict, code: 'ERR_HASH_MISMATCH' });
    await bye(peer);
    expect(await readFile(join(dir, 'held.txt'))).toEqual(HELD);
  });
});
