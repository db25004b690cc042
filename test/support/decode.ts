/** Runs the decoder over a stream cut into given pieces and records what it delivers. */
import { FrameDecoder } from '../../src/protocol/decoder.js';
import type { ControlFrame } from '../../src/protocol/messages.js';

/** A frame with its Buffers as hex strings, for deep equality. */
export type PlainFrame = Record<string, unknown>;

export function plain(frame: ControlFrame): PlainFrame {
  const out: PlainFrame = {};
  for (const [k, v] of Object.entries(frame)) out[k] = Buffer.isBuffer(v) ? v.toString('hex') : v;
  return out;
}

export interface Decoded {
  frames: PlainFrame[];
  data: Buffer;
  /** The error code the decoder raised, if any (push or end). */
  error?: string;
}

export function decodePieces(pieces: Buffer[]): Decoded {
  const frames: PlainFrame[] = [];
  const data: Buffer[] = [];
  const decoder = new FrameDecoder({
    onFrame: (f) => frames.push(plain(f)),
    onData: (piece) => data.push(Buffer.from(piece)),
  });
  try {
    for (const piece of pieces) decoder.push(piece);
    decoder.end();
  } catch (err) {
    return { frames, data: Buffer.concat(data), error: (err as { code?: string }).code ?? String(err) };
  }
  return { frames, data: Buffer.concat(data) };
}

/** Every way to cut `stream` in two, plus one byte at a time. */
export function* splits(stream: Buffer): Generator<Buffer[]> {
  for (let at = 0; at <= stream.length; at++) yield [stream.subarray(0, at), stream.subarray(at)];
  yield [...stream].map((b) => Buffer.from([b]));
}
