#!/usr/bin/env node
/**
 * The ferry conformance kit: plays the wire conversations of
 * fixtures/conformance/*.json against a receiver or a sender under test and
 * checks its answers, its disk and its exit code (docs/conformance.md).
 *
 * Plain Node ESM with builtins only, and no import from src/: frames are
 * encoded and decoded here, from docs/protocol.md alone, so the kit is an
 * independent check of any implementation, ferry's included.
 *
 *   node scripts/conformance.mjs \
 *     --receiver "node dist/ferry.mjs receive --insecure --once --json --host 127.0.0.1 --port {port} --dir {dir}" \
 *     --sender "node dist/ferry.mjs send {files} --to 127.0.0.1:{port} --insecure --retries 0"
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// The protocol, from docs/protocol.md.

/** Section 3: code, and the payload bounds that section 2.1 checks. */
const TYPES = {
  HELLO: { code: 0x0001, min: 5, max: 260 },
  BYE: { code: 0x0002, min: 0, max: 0 },
  PAKE: { code: 0x0003, min: 65, max: 65 },
  CONFIRM: { code: 0x0004, min: 32, max: 32 },
  SECURE: { code: 0x0005, min: 0, max: 0 },
  OFFER: { code: 0x0010, min: 25, max: 4120 },
  ACCEPT: { code: 0x0011, min: 8, max: 72 },
  REFUSE: { code: 0x0012, min: 2, max: 1026 },
  RESUME: { code: 0x0013, min: 8, max: 8 },
  DATA: { code: 0x0020, min: 1, max: 8 * 1024 * 1024 },
  END: { code: 0x0021, min: 2, max: 128 },
  VERDICT: { code: 0x0022, min: 3, max: 1091 },
  HEARTBEAT: { code: 0x0023, min: 8, max: 8 },
  ABORT: { code: 0x00ff, min: 2, max: 1026 },
};
const TYPE_BY_CODE = new Map(Object.entries(TYPES).map(([name, t]) => [t.code, name]));

/** Section 8. */
const STATUS = {
  OK: 0x0000,
  ERR_EXISTS: 0x0101,
  ERR_BAD_NAME: 0x0102,
  ERR_NAME_TOO_LONG: 0x0103,
  ERR_TOO_LARGE: 0x0104,
  ERR_UNSUPPORTED_HASH: 0x0105,
  ERR_BAD_CODE: 0x0106,
  ERR_RATE_LIMITED: 0x0107,
  ERR_INSECURE_MISMATCH: 0x0108,
  ERR_NOT_HELD: 0x0109,
  ERR_HASH_MISMATCH: 0x0201,
  ERR_SIZE_MISMATCH: 0x0202,
  ERR_TRANSFER: 0x0301,
  ERR_IO: 0x0302,
  ERR_TIMEOUT: 0x0303,
  ERR_INTERRUPTED: 0x0304,
  ERR_SOURCE_CHANGED: 0x0305,
  ERR_SHUTDOWN: 0x0306,
  ERR_BUSY: 0x0307,
  ERR_BAD_MAGIC: 0x0401,
  ERR_UNSUPPORTED_VERSION: 0x0402,
  ERR_UNKNOWN_FRAME_TYPE: 0x0403,
  ERR_FRAME_TOO_SMALL: 0x0404,
  ERR_FRAME_TOO_LARGE: 0x0405,
  ERR_BAD_END_MARKER: 0x0406,
  ERR_MALFORMED_PAYLOAD: 0x0407,
  ERR_UNEXPECTED_FRAME: 0x0408,
  ERR_TRUNCATED: 0x0409,
};
const STATUS_BY_CODE = new Map(Object.entries(STATUS).map(([name, code]) => [code, name]));
const statusName = (code) => STATUS_BY_CODE.get(code) ?? `0x${code.toString(16).padStart(4, '0')}`;
const statusCode = (v) => (typeof v === 'number' ? v : STATUS[v] ?? fail(`unknown status name ${v}`));

/** Section 5.3. */
const FLAGS = { DIRECTORY: 0x01, STREAM: 0x02, EAGER: 0x04, PROBE: 0x08, REPLACE: 0x10 };
/** Section 6: the kit hashes with SHA-256 only, which every peer must support. */
const SHA256 = 2;
/** Section 2: the start and end markers, and the one version. */
const START = 0xc8;
const END_MARKER = 0xc9;
const VERSION = 0x01;
/** Rule 2 lets the sender choose the split; the kit uses ferry's 1 MiB. */
const CHUNK = 1024 * 1024;

function fail(message) {
  throw new Error(message);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest();
const hexBytes = (s) => {
  const clean = s.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) fail(`not hex: ${s.slice(0, 40)}`);
  return Buffer.from(clean, 'hex');
};

function frame(type, payload) {
  const header = Buffer.alloc(8);
  header[0] = START;
  header[1] = VERSION;
  header.writeUInt16BE(type, 2);
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload, Buffer.from([END_MARKER])]);
}

const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const i64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
};
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const u16 = (n) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** Incremental decoder of section 2, validating in the order of 2.1 so a peer's bad frame is named by its code. */
class Decoder {
  constructor() {
    this.buf = Buffer.alloc(0);
  }
  /** Returns the complete frames in `chunk`; throws `{ code }` on the first violation. */
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out = [];
    for (;;) {
      const b = this.buf;
      if (b.length >= 1 && b[0] !== START) throw { code: 'ERR_BAD_MAGIC' };
      if (b.length >= 2 && b[1] !== VERSION) throw { code: 'ERR_UNSUPPORTED_VERSION' };
      if (b.length < 4) return out;
      const typeCode = b.readUInt16BE(2);
      const type = TYPE_BY_CODE.get(typeCode);
      if (!type) throw { code: 'ERR_UNKNOWN_FRAME_TYPE', typeCode };
      if (b.length < 8) return out;
      const length = b.readUInt32BE(4);
      if (length < TYPES[type].min) throw { code: 'ERR_FRAME_TOO_SMALL', type };
      if (length > TYPES[type].max) throw { code: 'ERR_FRAME_TOO_LARGE', type };
      if (b.length < 9 + length) return out;
      if (b[8 + length] !== END_MARKER) throw { code: 'ERR_BAD_END_MARKER', type };
      const payload = Buffer.from(b.subarray(8, 8 + length));
      out.push({ type, payload, raw: Buffer.from(b.subarray(0, 9 + length)) });
      this.buf = b.subarray(9 + length);
    }
  }
  /** True when the stream stopped inside a frame (ERR_TRUNCATED). */
  inside() {
    return this.buf.length > 0;
  }
}

/** Section 5, read back into named fields for matching; throws on a payload that section 5 calls malformed. */
function parse(f) {
  const p = f.payload;
  const text = (b) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw { code: 'ERR_MALFORMED_PAYLOAD', why: `${f.type} message is not UTF-8` };
    }
  };
  const max53 = (v, what) => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw { code: 'ERR_MALFORMED_PAYLOAD', why: `${what} over 2^53-1` };
    return Number(v);
  };
  switch (f.type) {
    case 'HELLO': {
      const k = p[4];
      if (k === 0 || p.length !== 5 + k) throw { code: 'ERR_MALFORMED_PAYLOAD', why: 'HELLO count' };
      return { features: p.readUInt32BE(0), algorithms: [...p.subarray(5)] };
    }
    case 'OFFER': {
      const n = p.readUInt16BE(22);
      if (p.length !== 24 + n) throw { code: 'ERR_MALFORMED_PAYLOAD', why: 'OFFER name length' };
      return {
        size: max53(p.readBigUInt64BE(0), 'size'),
        mtime: Number(p.readBigInt64BE(8)),
        mode: p.readUInt32BE(16),
        algorithm: p[20],
        flags: p[21],
        nameLength: n,
        name: text(p.subarray(24)),
      };
    }
    case 'ACCEPT':
      return { offset: max53(p.readBigUInt64BE(0), 'offset'), digest: p.subarray(8).toString('hex') };
    case 'RESUME':
      return { offset: max53(p.readBigUInt64BE(0), 'offset') };
    case 'REFUSE':
    case 'ABORT': {
      const code = p.readUInt16BE(0);
      if (code === 0) throw { code: 'ERR_MALFORMED_PAYLOAD', why: `${f.type} with code 0` };
      return { code, message: text(p.subarray(2)) };
    }
    case 'END':
      return { content: p.subarray(0, p.length / 2).toString('hex'), offer: p.subarray(p.length / 2).toString('hex') };
    case 'VERDICT': {
      const d = p[2];
      if (d > 64 || p.length < 3 + d || p.length - 3 - d > 1024) throw { code: 'ERR_MALFORMED_PAYLOAD', why: 'VERDICT lengths' };
      return { status: p.readUInt16BE(0), digest: p.subarray(3, 3 + d).toString('hex'), message: text(p.subarray(3 + d)) };
    }
    case 'HEARTBEAT':
      return { received: max53(p.readBigUInt64BE(0), 'received') };
    case 'DATA':
      return { length: p.length };
    default:
      return {};
  }
}

function describe(f) {
  const v = f.fields ?? {};
  switch (f.type) {
    case 'REFUSE':
    case 'ABORT':
      return `${f.type} ${statusName(v.code)}${v.message ? ` "${v.message.slice(0, 80)}"` : ''}`;
    case 'VERDICT':
      return `VERDICT ${statusName(v.status)} digest=${v.digest || '(none)'}`;
    case 'ACCEPT':
      return `ACCEPT offset=${v.offset}${v.digest ? ` digest=${v.digest}` : ''}`;
    case 'OFFER':
      return `OFFER ${JSON.stringify(v)}`;
    case 'DATA':
      return `DATA ${f.payload.length} bytes`;
    default:
      return `${f.type} ${f.payload.toString('hex').slice(0, 80)}`;
  }
}

// ---------------------------------------------------------------------------
// Case data: contents, values with references, frames to send, frames to expect.

/** A file's content as a case gives it: text, hex, or `pattern` bytes (byte i = i mod 251, so no two nearby offsets look alike). */
function content(spec) {
  if (typeof spec.text === 'string') return Buffer.from(spec.text, 'utf8');
  if (typeof spec.hex === 'string') return hexBytes(spec.hex);
  if (typeof spec.pattern === 'number') {
    const b = Buffer.alloc(spec.pattern);
    for (let i = 0; i < b.length; i++) b[i] = (i + (spec.seed ?? 0)) % 251;
    return b;
  }
  if (typeof spec.file === 'string') return readFileSync(spec.file);
  fail(`a content needs text, hex or pattern: ${JSON.stringify(spec)}`);
}

/** A string field that may be written `{ "repeat": "a/", "count": 64, "then": "a" }` for names too long to read. */
const str = (v) => (typeof v === 'string' ? v : `${str(v.repeat).repeat(v.count)}${v.then === undefined ? '' : str(v.then)}`);

const mode = (v) => (typeof v === 'string' ? parseInt(v, 8) : v);
const flags = (v) => (Array.isArray(v) ? v.reduce((a, f) => a | (FLAGS[f] ?? fail(`unknown flag ${f}`)), 0) : v ?? 0);

/**
 * Numbers and digests may name a value instead of spelling it:
 *   $accept.offset           the offset of the last ACCEPT received
 *   $size:F                  the size of case file F
 *   $sha256:F                SHA-256 of case file F
 *   $sha256:F:A:B            SHA-256 of bytes A..B of F (A, B may be $accept.offset)
 *   $offer                   SHA-256 of the last OFFER payload this connection carried (sent or received)
 */
function ref(v, ctx) {
  if (typeof v !== 'string' || !v.startsWith('$')) return v;
  if (v === '$accept.offset') return ctx.accept?.offset ?? fail('no ACCEPT received yet for $accept.offset');
  if (v === '$offer') return (ctx.offer ?? fail('no OFFER yet for $offer')).toString('hex');
  const m = /^\$(sha256|size):([^:]+)(?::([^:]+):([^:]+))?$/.exec(v);
  if (!m) fail(`unknown reference ${v}`);
  const file = ctx.files[m[2]] ?? fail(`no case file ${m[2]}`);
  if (m[1] === 'size') return file.length;
  const from = m[3] === undefined ? 0 : Number(ref(m[3], ctx));
  const to = m[4] === undefined ? file.length : Number(ref(m[4], ctx));
  return sha256(file.subarray(from, to)).toString('hex');
}
const num = (v, ctx, dflt = 0) => (v === undefined ? dflt : Number(ref(v, ctx)));

function offerPayload(s, ctx) {
  if (s.payloadHex) return hexBytes(s.payloadHex);
  const name = s.nameHex !== undefined ? hexBytes(s.nameHex) : Buffer.from(str(s.name), 'utf8');
  return Buffer.concat([
    u64(num(s.size, ctx)),
    i64(s.mtime ?? 0),
    u32(mode(s.mode ?? 0o644)),
    Buffer.from([s.algorithm ?? SHA256, flags(s.flags)]),
    u16(s.nameLength ?? name.length),
    name,
  ]);
}

/**
 * One frame spec of a case, as the bytes to send (several DATA frames for a
 * long file slice). `truncate: n` sends only its first n bytes, for a
 * connection that is then cut inside the frame.
 */
function encode(s, ctx) {
  if (typeof s === 'object' && s.truncate !== undefined) {
    const whole = Buffer.concat(encodeWhole({ ...s, truncate: undefined }, ctx));
    return [whole.subarray(0, s.truncate)];
  }
  return encodeWhole(s, ctx);
}

function encodeWhole(s, ctx) {
  if (typeof s === 'string') return [hexBytes(s)];
  if (s.bin) return [readFileSync(join(ctx.caseDir, s.bin))];
  const t = TYPES[s.type] ?? fail(`unknown frame type ${s.type}`);
  const digest = (v) => (v === undefined ? Buffer.alloc(0) : hexBytes(String(ref(v, ctx))));
  const text = (v) => Buffer.from(v ?? '', 'utf8');
  let payload;
  switch (s.type) {
    case 'HELLO':
      payload = Buffer.concat([u32(s.features ?? 0), Buffer.from([(s.algorithms ?? [SHA256]).length, ...(s.algorithms ?? [SHA256])])]);
      break;
    case 'OFFER':
      payload = offerPayload(s, ctx);
      ctx.offer = sha256(payload);
      break;
    case 'ACCEPT':
      payload = Buffer.concat([u64(num(s.offset, ctx)), digest(s.digest)]);
      break;
    case 'REFUSE':
    case 'ABORT':
      payload = Buffer.concat([u16(statusCode(s.code)), text(s.message)]);
      break;
    case 'RESUME':
      payload = u64(num(s.offset, ctx));
      break;
    case 'DATA': {
      if (s.file === undefined) {
        payload = s.text !== undefined ? text(s.text) : hexBytes(s.hex);
        break;
      }
      const file = ctx.files[s.file] ?? fail(`no case file ${s.file}`);
      const from = num(s.from, ctx);
      const to = num(s.to, ctx, file.length);
      const out = [];
      for (let at = from; at < to; at += CHUNK) out.push(frame(t.code, file.subarray(at, Math.min(to, at + CHUNK))));
      return out;
    }
    case 'END': {
      const offer = typeof s.offer === 'object' ? sha256(offerPayload(s.offer, ctx)) : digest(s.offer);
      payload = Buffer.concat([digest(s.content), offer]);
      break;
    }
    case 'VERDICT': {
      const d = digest(s.digest);
      payload = Buffer.concat([u16(statusCode(s.status ?? 'OK')), Buffer.from([d.length]), d, text(s.message)]);
      break;
    }
    case 'HEARTBEAT':
      payload = u64(num(s.received, ctx));
      break;
    default:
      payload = s.payloadHex ? hexBytes(s.payloadHex) : Buffer.alloc(0);
  }
  return [frame(t.code, payload)];
}

/**
 * Checks a received frame against an expected one. Fields absent from the
 * expectation are not checked. Returns a reason, or null when it matches.
 */
function mismatch(f, e, ctx) {
  if (e.hex !== undefined) {
    const want = hexBytes(e.hex);
    return want.equals(f.raw) ? null : `expected the bytes ${want.toString('hex')}, got ${f.raw.toString('hex')}`;
  }
  if (f.type !== e.type) return `expected ${e.type}, got ${describe(f)}`;
  const v = f.fields;
  const bad = (field, want, got) => `${e.type} ${field}: expected ${want}, got ${got} (${describe(f)})`;
  for (const key of ['code', 'status']) {
    if (e[key] !== undefined && v[key] !== statusCode(e[key])) return bad(key, e[key], statusName(v[key]));
  }
  if (e.algorithmsInclude) {
    for (const a of e.algorithmsInclude) if (!v.algorithms.includes(a)) return bad('algorithms', `to include ${a}`, JSON.stringify(v.algorithms));
  }
  if (e.offset === '>0') {
    if (!(v.offset > 0)) return bad('offset', '> 0', v.offset);
  } else if (e.offset !== undefined && v.offset !== num(e.offset, ctx)) return bad('offset', num(e.offset, ctx), v.offset);
  if (e.prefixOf !== undefined) {
    // The digest of the first `offset` bytes of a case file (rule 8), whatever offset the peer chose.
    const file = ctx.files[e.prefixOf];
    if (v.offset > file.length) return bad('offset', `at most ${file.length}`, v.offset);
    const want = sha256(file.subarray(0, v.offset)).toString('hex');
    if (v.digest !== want) return bad('prefix digest', want, v.digest || '(none)');
  }
  for (const key of ['features', 'size', 'mtime', 'algorithm', 'received', 'nameLength']) {
    if (e[key] !== undefined && v[key] !== num(e[key], ctx)) return bad(key, num(e[key], ctx), v[key]);
  }
  if (e.mode !== undefined && v.mode !== mode(e.mode)) return bad('mode', `0o${mode(e.mode).toString(8)}`, `0o${v.mode.toString(8)}`);
  if (e.flags !== undefined) {
    const allowed = (Array.isArray(e.flags) && Array.isArray(e.flags[0]) ? e.flags : [e.flags]).map(flags);
    if (!allowed.includes(v.flags)) return bad('flags', allowed.join(' or '), v.flags);
  }
  if (e.name !== undefined && v.name !== str(e.name)) return bad('name', JSON.stringify(str(e.name)), JSON.stringify(v.name));
  for (const key of ['digest', 'content', 'offer']) {
    if (e[key] !== undefined && v[key] !== String(ref(e[key], ctx))) return bad(key, String(ref(e[key], ctx)) || '(none)', v[key] || '(none)');
  }
  if (e.payloadHex !== undefined && !hexBytes(e.payloadHex).equals(f.payload)) return bad('payload', e.payloadHex, f.payload.toString('hex'));
  return null;
}

// ---------------------------------------------------------------------------
// A wire peer: a socket, the frames received so far, bounded waits.

class Wire {
  /**
   * `answerProbes`: playing a receiver, the kit answers each PROBE offer
   * (section 5.3, optional for a sender) with VERDICT ERR_NOT_HELD as it
   * arrives, and leaves it out of the frames the case checks: the case then
   * sees the offers a sender makes to a receiver that holds nothing.
   */
  constructor(socket, waitMs, { answerProbes = false } = {}) {
    this.socket = socket;
    this.waitMs = waitMs;
    this.answerProbes = answerProbes;
    this.decoder = new Decoder();
    this.queue = [];
    this.ended = false; // the peer's FIN (or the socket's close)
    this.violation = null;
    this.notify = () => {};
    socket.on('data', (chunk) => {
      if (this.violation) return;
      try {
        for (const f of this.decoder.push(chunk)) {
          f.fields = parse(f);
          if (this.answerProbes && f.type === 'OFFER' && (f.fields.flags & FLAGS.PROBE) !== 0) {
            this.send(frame(TYPES.VERDICT.code, Buffer.concat([u16(STATUS.ERR_NOT_HELD), Buffer.from([0])])));
            continue;
          }
          this.queue.push(f);
        }
      } catch (err) {
        // Whatever the peer sent, it ends this case as a failure, never the kit.
        this.violation =
          err instanceof Error
            ? `the kit could not read the peer's frame: ${err.message}`
            : `the peer sent a frame that breaks section 2.1/5 (${err.code}${err.why ? `: ${err.why}` : ''})`;
      }
      this.notify();
    });
    socket.on('end', () => ((this.ended = true), this.notify()));
    socket.on('close', () => ((this.ended = true), this.notify()));
    socket.on('error', () => {});
  }

  send(bytes) {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Waits until `ready()` holds, the connection ended, or the wait ran out. */
  until(ready, what) {
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => ((this.notify = () => {}), reject(new Error(`timed out after ${this.waitMs} ms waiting for ${what}`))), this.waitMs);
      this.notify = () => {
        if (this.violation) reject(new Error(this.violation));
        else if (ready()) resolvePromise();
        else if (this.ended) reject(new Error(`the peer closed the connection while the kit waited for ${what}`));
        else return;
        clearTimeout(timer);
        this.notify = () => {};
      };
      this.notify();
    });
  }

  /** The next frame, skipping HEARTBEATs (rule 7: the receiver's, at its pace) and the `skip` types. */
  async next(what, skip = []) {
    for (;;) {
      await this.until(() => this.queue.length > 0, what);
      const f = this.queue.shift();
      if ((f.type === 'HEARTBEAT' && what !== 'HEARTBEAT') || skip.includes(f.type)) continue;
      return f;
    }
  }

  /**
   * The peer must close: only HEARTBEATs, and the frames in `allow` (each at
   * most once, in that order), may come before its FIN.
   */
  async closes(allow = [], ctx = {}) {
    const pending = [...allow];
    for (;;) {
      while (this.queue.length) {
        const f = this.queue.shift();
        if (f.type === 'HEARTBEAT') continue;
        if (pending.length && !mismatch(f, pending[0], ctx)) {
          pending.shift();
          continue;
        }
        fail(`expected the peer to close, got ${describe(f)}`);
      }
      if (this.ended) break;
      await this.until(() => this.ended || this.queue.length > 0, 'the peer to close the connection');
    }
    if (this.decoder.inside()) fail('the peer closed inside a frame (ERR_TRUNCATED)');
  }

  /** Nothing but HEARTBEATs may arrive for `ms`: the one timed wait, because it checks an absence. */
  async quiet(ms, what) {
    await new Promise((r) => setTimeout(r, ms));
    if (this.violation) fail(this.violation);
    const other = this.queue.find((f) => f.type !== 'HEARTBEAT');
    if (other) fail(`${what}, got ${describe(other)}`);
  }
}

/** Plays a case's steps on one connection. */
async function play(wire, steps, ctx) {
  for (const step of steps) {
    if (step.send) {
      for (const s of step.send) for (const bytes of encode(s, ctx)) wire.send(bytes);
    } else if (step.expect) {
      for (const e of step.expect) {
        if (e.type === 'DATA' && e.file !== undefined) {
          await expectData(wire, e, ctx);
          continue;
        }
        const f = await wire.next(e.type ?? 'a frame', e.skip ?? []);
        const why = mismatch(f, e, ctx);
        if (why) fail(why);
        if (f.type === 'ACCEPT') ctx.accept = f.fields;
        if (f.type === 'OFFER') ctx.offer = sha256(f.payload);
      }
    } else if (step.expectClose) {
      await wire.closes(step.expectClose.allow ?? [], ctx);
    } else if (step.quiet) {
      await wire.quiet(step.quiet, step.why ?? 'expected no frame yet');
    } else if (step.end) {
      // Our FIN, after everything written: the polite close of section 5.2.
      wire.socket.end();
    } else if (step.cut) {
      // Gone without BYE or ABORT (section 1): "the peer vanished".
      await new Promise((r) => (wire.socket.writableLength === 0 ? r() : wire.socket.once('drain', r)));
      wire.socket.destroy();
      wire.ended = true;
    } else {
      fail(`unknown step ${JSON.stringify(step)}`);
    }
  }
}

/**
 * DATA frames from a sender whose bytes, joined, must be exactly bytes
 * `from`..`to` of a case file; `frames: n` takes only the first n frames
 * (and checks them as a prefix), for cases that answer mid-file.
 */
async function expectData(wire, e, ctx) {
  const file = ctx.files[e.file];
  const from = num(e.from, ctx);
  const to = num(e.to, ctx, file.length);
  let at = from;
  let count = 0;
  while (at < to && (e.frames === undefined || count < e.frames)) {
    const f = await wire.next(`DATA of ${e.file} from byte ${at}`);
    if (f.type !== 'DATA') fail(`expected DATA of ${e.file} from byte ${at} (to ${to}), got ${describe(f)}`);
    if (at + f.payload.length > to) fail(`DATA runs past byte ${to} of ${e.file} (rule 2, 3)`);
    if (!f.payload.equals(file.subarray(at, at + f.payload.length))) fail(`DATA bytes ${at}..${at + f.payload.length} differ from ${e.file}`);
    at += f.payload.length;
    count++;
  }
}

// ---------------------------------------------------------------------------
// Processes, ports, disks.

/** Splits a command template into arguments (single and double quotes group), then fills in placeholders. */
function command(template, values) {
  const words = [];
  for (const m of template.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]);
  return words.flatMap((w) => (w === '{files}' ? values.files : [w.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? `{${k}}`))]));
}

// Run from the kit's own working directory, so a template may name paths relative to it (dist/ferry.mjs).
function start(argv) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, output: '', exitCode: undefined, error: null };
  const keep = (d) => (proc.output = (proc.output + d.toString()).slice(-4000));
  child.stdout.on('data', keep);
  // --port-from-json: the port is the one the receiver says it listens on, in a JSON line {"event":"listening","port":N}.
  let lines = '';
  proc.listening = new Promise((r) => {
    child.stdout.on('data', (d) => {
      lines += d.toString();
      for (let at = lines.indexOf('\n'); at >= 0; at = lines.indexOf('\n')) {
        const line = lines.slice(0, at);
        lines = lines.slice(at + 1);
        try {
          const e = JSON.parse(line);
          if (e?.event === 'listening' && Number.isInteger(e.port) && e.port > 0) r(e.port);
        } catch {
          // Not JSON: not the line looked for.
        }
      }
    });
  });
  child.stderr.on('data', keep);
  proc.exited = new Promise((r) => {
    child.on('error', (err) => ((proc.error = err), (proc.exitCode = null), r(null)));
    child.on('exit', (code, signal) => ((proc.exitCode = code ?? (signal ? `signal ${signal}` : null)), r(proc.exitCode)));
  });
  return proc;
}

/** Resolves with the exit code, or `undefined` if the process is still running after `ms`. */
async function exitWithin(proc, ms) {
  let timer;
  const r = await Promise.race([proc.exited, new Promise((res) => (timer = setTimeout(() => res(undefined), ms)))]);
  clearTimeout(timer);
  return r;
}

async function stop(proc) {
  if (proc.exitCode !== undefined) return;
  proc.child.kill('SIGTERM');
  if ((await exitWithin(proc, 2000)) === undefined) {
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

/** A port that was free: bound on port 0, read, released (the receiver under test binds it next). */
/** The port of the receiver's `listening` line, bounded by `ms` and by its exit. */
async function listeningPort(proc, ms) {
  let timer;
  const port = await Promise.race([proc.listening, proc.exited.then(() => null), new Promise((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  clearTimeout(timer);
  if (port === null) fail(`the receiver exited (${proc.error?.message ?? proc.exitCode}) before it listened: ${tail(proc.output)}`);
  if (port === undefined) fail(`the receiver printed no {"event":"listening","port":N} line within ${ms} ms: ${tail(proc.output)}`);
  return port;
}

async function freePort(host) {
  const srv = createServer();
  await new Promise((r, j) => (srv.once('error', j), srv.listen(0, host, r)));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Connects to the receiver under test, retrying while it starts: the
 * connection that succeeds is the case's own, so no probe connection
 * reaches the receiver. Bounded by `ms`, and by the process's exit.
 */
async function connectWhenUp(host, port, proc, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const socket = await new Promise((r) => {
      const s = connect({ host, port });
      s.once('connect', () => r(s));
      s.once('error', () => (s.destroy(), r(null)));
    });
    if (socket) return socket;
    if (proc.exitCode !== undefined) fail(`the receiver exited (${proc.error?.message ?? proc.exitCode}) before it listened: ${tail(proc.output)}`);
    if (Date.now() > deadline) fail(`the receiver did not accept connections on ${host}:${port} within ${ms} ms: ${tail(proc.output)}`);
    // A retry interval, not a synchronisation: the connect itself tells whether it is up.
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tail = (s) => s.trim().split('\n').slice(-3).join(' | ').slice(-400);

/** Every entry under `dir`, hidden ones included: relative path → { dir, mode, mtimeMs } or { size, sha256, mode, mtimeMs } (symlinks and others by type). */
function listing(dir, prefix = '') {
  const out = {};
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = lstatSync(join(dir, rel));
    if (st.isDirectory()) {
      out[rel] = { dir: true, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
      Object.assign(out, listing(dir, rel));
    } else if (st.isFile()) {
      out[rel] = { size: st.size, sha256: sha256(readFileSync(join(dir, rel))).toString('hex'), mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
    } else out[rel] = { other: st.isSymbolicLink() ? 'symlink' : 'special' };
  }
  return out;
}

/** Compares a listing with a case's `disk` (exact, hidden included) or `visible` (hidden entries ignored). */
function checkDisk(dir, c, ctx) {
  for (const key of ['disk', 'visible']) {
    const want = c[key];
    if (want === undefined) continue;
    let got = listing(dir);
    if (key === 'visible') got = Object.fromEntries(Object.entries(got).filter(([p]) => !p.split('/').some((part) => part.startsWith('.'))));
    const extra = Object.keys(got).filter((p) => !(p in want));
    if (extra.length) fail(`${key === 'disk' ? '--dir' : 'the visible part of --dir'} holds ${extra.map((p) => JSON.stringify(p)).join(', ')}, which it must not`);
    for (const [p, w] of Object.entries(want)) {
      const g = got[p] ?? fail(`--dir lacks ${JSON.stringify(p)}`);
      if (w.mode !== undefined && g.mode !== mode(w.mode)) fail(`${p} has mode 0o${g.mode.toString(8)}, expected 0o${mode(w.mode).toString(8)}`);
      if (w.mtimeMs !== undefined && Math.floor(g.mtimeMs) !== w.mtimeMs) fail(`${p} has mtime ${g.mtimeMs} ms, expected ${w.mtimeMs} (section 5.3)`);
      if (w.dir) {
        if (!g.dir) fail(`${p} is not a folder`);
        continue;
      }
      if (w.symlink) {
        if (g.other !== 'symlink') fail(`${p} is no longer a symlink`);
        continue;
      }
      if (g.dir || g.other) fail(`${p} is not a regular file`);
      const body = w.sameAs !== undefined ? ctx.files[w.sameAs] : w.text !== undefined || w.hex !== undefined ? content(w) : null;
      const size = body ? body.length : w.size;
      const digest = body ? sha256(body).toString('hex') : w.sha256;
      if (size !== undefined && g.size !== size) fail(`${p} has ${g.size} bytes, expected ${size}`);
      if (digest !== undefined && g.sha256 !== digest) fail(`${p} has the wrong content (sha256 ${g.sha256})`);
    }
  }
}

// ---------------------------------------------------------------------------
// The two roles.

/** The kit plays a raw sender against the receiver under test. */
async function receiverCase(c, opts) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-conform-rx-'));
  const ctx = { files: {}, caseDir: c.caseDir };
  let proc = null;
  try {
    for (const [name, spec] of Object.entries(c.files ?? {})) ctx.files[name] = content(spec);
    for (const [rel, spec] of Object.entries(c.before ?? {})) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      if (spec.dir) mkdirSync(join(dir, rel), { recursive: true });
      else if (spec.symlink !== undefined) symlinkSync(spec.symlink, join(dir, rel));
      else writeFileSync(join(dir, rel), content(spec));
    }
    for (const conn of c.connections ?? [{ steps: c.steps }]) {
      // A receiver that exited after the previous session (--once) is started again on the same folder.
      if (!proc || proc.exitCode !== undefined) {
        // A free port found here may be taken by another process before the receiver binds it; --port-from-json has none of that race.
        const port = opts.portFromJson ? 0 : await freePort(opts.host);
        proc = start(command(opts.receiver, { port, dir, host: opts.host }));
        proc.port = opts.portFromJson ? await listeningPort(proc, opts.startMs) : port;
      }
      const socket = await connectWhenUp(opts.host, proc.port, proc, opts.startMs);
      const wire = new Wire(socket, opts.waitMs);
      ctx.offer = undefined;
      ctx.accept = undefined;
      try {
        await play(wire, conn.steps, ctx);
      } finally {
        socket.destroy();
      }
      // The session is over on the wire; a receiver that exits after it (--once) is waited for,
      // so that the disk is checked after it finished with it. A connection that never said a
      // valid HELLO may not count as a session (README: "a port scanner does not count"), so
      // the case says `stopAfter` and the kit stops the receiver rather than wait.
      if (conn.stopAfter ?? c.stopAfter) await stop(proc);
      else await exitWithin(proc, opts.exitMs);
    }
    if (proc) await stop(proc);
    checkDisk(dir, c, ctx);
  } catch (err) {
    if (proc) {
      await stop(proc);
      err.message += opts.verbose ? `\n    receiver said: ${tail(proc.output)}` : '';
    }
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The kit plays a raw receiver against the sender under test. */
async function senderCase(c, opts) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-conform-tx-'));
  const ctx = { files: {}, caseDir: c.caseDir };
  const server = createServer();
  let proc = null;
  try {
    for (const [name, spec] of Object.entries(c.files ?? {})) {
      ctx.files[name] = content(spec);
      const path = join(dir, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, ctx.files[name]);
      chmodSync(path, mode(spec.mode ?? '0644'));
      // Seconds with a fraction that a double holds exactly, so the OFFER's millisecond mtime is known.
      const t = (spec.mtime ?? 1700000000500) / 1000;
      utimesSync(path, t, t);
    }
    // Folders last: writing their files would change their mtime.
    for (const [name, spec] of Object.entries(c.dirs ?? {})) {
      const path = join(dir, name);
      mkdirSync(path, { recursive: true });
      chmodSync(path, mode(spec.mode ?? '0755'));
      const t = (spec.mtime ?? 1700000000500) / 1000;
      utimesSync(path, t, t);
    }
    const accepted = new Promise((r) => server.once('connection', r));
    // Only the first connection is the case's: another one (a retry) is closed at once.
    server.on('connection', (s) => accepted.then((first) => first !== s && s.destroy()));
    await new Promise((r, j) => (server.once('error', j), server.listen(0, opts.host, r)));
    const port = server.address().port;
    const files = (c.args ?? Object.keys(c.files ?? {})).map((n) => join(dir, n));
    proc = start(command(opts.sender, { port, files, host: opts.host }));
    let timer;
    const socket = await Promise.race([
      accepted,
      proc.exited.then(() => fail(`the sender exited (${proc.error?.message ?? proc.exitCode}) without connecting: ${tail(proc.output)}`)),
      new Promise((_, j) => (timer = setTimeout(() => j(new Error(`the sender did not connect within ${opts.startMs} ms`)), opts.startMs))),
    ]).finally(() => clearTimeout(timer));
    const wire = new Wire(socket, opts.waitMs, { answerProbes: true });
    try {
      await play(wire, c.steps, ctx);
    } finally {
      socket.destroy();
    }
    if (c.exit !== undefined) {
      const code = await exitWithin(proc, opts.waitMs);
      if (code === undefined) fail(`the sender did not exit within ${opts.waitMs} ms (expected exit ${c.exit})`);
      if (code !== c.exit) fail(`the sender exited ${code}, expected ${c.exit}: ${tail(proc.output)}`);
    }
  } catch (err) {
    if (proc && opts.verbose) err.message += `\n    sender said: ${tail(proc.output)}`;
    throw err;
  } finally {
    if (proc) await stop(proc);
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Loading and running.

function loadCases(dir) {
  const cases = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const doc = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    for (const c of doc.cases) cases.push({ ...c, role: c.role ?? doc.role, caseDir: dir, source: file });
  }
  const seen = new Set();
  for (const c of cases) {
    if (seen.has(c.name)) fail(`two cases named ${c.name}`);
    seen.add(c.name);
  }
  return cases;
}

function parseArgs(argv) {
  const opts = {
    receiver: null,
    sender: null,
    cases: resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/conformance'),
    host: '127.0.0.1',
    only: [],
    waitMs: 5000,
    startMs: 10000,
    exitMs: 5000,
    jobs: 3,
    portFromJson: false,
    verbose: false,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? fail(`${a} needs a value`);
    if (a === '--receiver') opts.receiver = value();
    else if (a === '--sender') opts.sender = value();
    else if (a === '--cases') opts.cases = resolve(value());
    else if (a === '--host') opts.host = value();
    else if (a === '--only') opts.only.push(value());
    else if (a === '--wait-ms') opts.waitMs = Number(value());
    else if (a === '--exit-ms') opts.exitMs = Number(value());
    else if (a === '--jobs') opts.jobs = Number(value());
    else if (a === '--port-from-json') opts.portFromJson = true;
    else if (a === '--verbose') opts.verbose = true;
    else if (a === '--json') opts.json = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: node scripts/conformance.mjs [--receiver CMD] [--sender CMD] [--only NAME]... [--cases DIR]\n' +
          '       [--host 127.0.0.1] [--wait-ms 5000] [--exit-ms 5000] [--jobs 3] [--port-from-json] [--verbose] [--json]\n' +
          'CMD placeholders: receiver {port} {dir} {host}; sender {files} {port} {host}. See docs/conformance.md.\n',
      );
      process.exit(0);
    } else fail(`unknown option ${a}`);
  }
  if (!opts.receiver && !opts.sender) fail('give --receiver CMD, --sender CMD, or both (docs/conformance.md)');
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`conformance: ${err.message}\n`);
    process.exit(2);
  }
  const all = loadCases(opts.cases);
  const unknown = opts.only.filter((name) => !all.some((c) => c.name === name));
  if (unknown.length) {
    process.stderr.write(`conformance: no case named ${unknown.join(', ')}\n`);
    process.exit(2);
  }
  const cases = all.filter(
    (c) => (c.role === 'receiver' ? opts.receiver : opts.sender) && (opts.only.length === 0 || opts.only.includes(c.name)),
  );
  let passed = 0;
  let failed = 0;
  // Cases share nothing (own folder, port and process), so a few run at once; lines still come out in case order.
  const results = new Array(cases.length);
  let printed = 0;
  let next = 0;
  const flush = () => {
    for (; printed < cases.length && results[printed]; printed++) {
      const { c, why, ms } = results[printed];
      if (why === null) passed++;
      else failed++;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ name: c.name, role: c.role, section: c.section, ok: why === null, why, known: c.known, ms })}\n`);
      } else process.stdout.write(why === null ? `ok ${c.name}\n` : `not ok ${c.name}: ${why}\n`);
    }
  };
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      const c = cases[i];
      const began = Date.now();
      let why = null;
      try {
        await (c.role === 'receiver' ? receiverCase(c, opts) : senderCase(c, opts));
      } catch (err) {
        why = String(err?.message ?? err).replace(/\n(?! {4})/g, ' ');
      }
      results[i] = { c, why, ms: Date.now() - began };
      flush();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, worker));
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

await main();
