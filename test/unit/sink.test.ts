/** FileSink in memory: a fake FileHandle stands for the disk. */
import type { FileHandle } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { FileSink } from '../../src/receiver/sink.js';

/** A FileHandle that keeps bytes in memory; `short` makes each writev take at most that many bytes. */
function memoryHandle(options: { short?: number; fail?: string; gate?: boolean } = {}) {
  let data = Buffer.alloc(0);
  let release: () => void = () => {};
  let gate = options.gate ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
  const handle = {
    fd: -1,
    async writev(buffers: Buffer[], position: number) {
      await gate;
      if (options.fail) throw Object.assign(new Error(options.fail), { code: options.fail });
      let bytes = Buffer.concat(buffers);
      if (options.short !== undefined) bytes = bytes.subarray(0, options.short);
      const end = position + bytes.length;
      if (data.length < end) data = Buffer.concat([data, Buffer.alloc(end - data.length)]);
      bytes.copy(data, position);
      return { bytesWritten: bytes.length, buffers };
    },
    async truncate(length: number) {
      data = data.subarray(0, length);
    },
    async read(buffer: Buffer, offset: number, length: number, position: number) {
      const n = data.copy(buffer, offset, position, Math.min(position + length, data.length));
      return { bytesRead: n, buffer };
    },
  };
  return { handle: handle as unknown as FileHandle, bytes: () => data, open: () => release() };
}

describe('FileSink', () => {
  test('writes pieces in order, from the position it was given, even when the disk takes fewer bytes per call', async () => {
    const options: { short?: number } = {};
    const disk = memoryHandle(options);
    await disk.handle.writev([Buffer.from('held')], 0);
    options.short = 3;
    const sink = new FileSink(disk.handle, 4, false);
    sink.write(Buffer.from('-abc'));
    sink.write(Buffer.from('defgh'));
    await sink.finish();
    expect(disk.bytes().toString()).toBe('held-abcdefgh');
  });

  test('says full above the high-water mark and calls onDrain once the disk caught up', async () => {
    const disk = memoryHandle({ gate: true });
    const sink = new FileSink(disk.handle, 0, false);
    let drained = 0;
    sink.onDrain = () => drained++;
    for (let i = 0; i < 5; i++) sink.write(Buffer.alloc(1024 * 1024, i));
    expect(sink.full).toBe(true);
    disk.open();
    await sink.finish();
    expect([sink.full, drained]).toEqual([false, 1]);
    expect(disk.bytes().length).toBe(5 * 1024 * 1024);
  });

  test('a failed write is reported once through onError, and finish() rejects with ERR_IO in plain words', async () => {
    const disk = memoryHandle({ fail: 'ENOSPC' });
    const sink = new FileSink(disk.handle, 0, false);
    const errors: string[] = [];
    sink.onError = (err) => errors.push(err.code);
    sink.write(Buffer.from('x'));
    await expect(sink.finish()).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('no space left on device') });
    expect(errors).toEqual(['ERR_IO']);
    expect(() => sink.write(Buffer.from('y'))).toThrow(expect.objectContaining({ code: 'ERR_IO' }));
  });

  test('restart() drops what is held and writes from byte 0 again', async () => {
    const disk = memoryHandle();
    const sink = new FileSink(disk.handle, 0, false);
    sink.write(Buffer.from('old bytes'));
    await sink.restart();
    sink.write(Buffer.from('new'));
    await sink.finish();
    expect(disk.bytes().toString()).toBe('new');
  });

  test('abandon() drops what is queued and never throws', async () => {
    const disk = memoryHandle({ gate: true });
    const sink = new FileSink(disk.handle, 0, false);
    sink.write(Buffer.from('first'));
    sink.write(Buffer.from('second'));
    const abandoned = sink.abandon();
    disk.open();
    await expect(abandoned).resolves.toBeUndefined();
    expect(() => sink.write(Buffer.from('more'))).toThrow();
  });
});
