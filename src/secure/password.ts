/**
 * The sender's password scalars (w = scrypt(code) mod n, spake2.ts), kept
 * per code for the process: scrypt costs about 50 ms.
 */
import { normalizeCode } from './code.js';
import { passwordScalar, warmBlinds } from './spake2.js';

/**
 * Password scalars of the codes this process has sent with: scrypt costs
 * about 0.1 s, and a library user sending 100 files at once with one code
 * (or a sender retrying) needs it once, not per connection.
 */
const scalars = new Map<string, Promise<bigint>>();
export function cachedScalar(code: string): Promise<bigint> {
  let w = scalars.get(code);
  if (!w) {
    if (scalars.size >= 16) scalars.clear();
    // Both blinding terms as soon as w is known: the first frame then costs no scalar multiplication by a fixed point.
    w = passwordScalar(code).then((scalar) => (warmBlinds(scalar), scalar));
    scalars.set(code, w);
    w.catch(() => scalars.delete(code));
  }
  return w;
}

/**
 * Starts the password hash of `code` for a later secureClient(), so that it
 * runs while the sender walks its paths and dials instead of after the TCP
 * connect, when the receiver waits for the first frame. Never throws: a bad
 * code is reported by secureClient.
 */
export function prepareClient(code: string): void {
  try {
    cachedScalar(normalizeCode(code)).catch(() => {});
  } catch {
    // A malformed code: secureClient says so.
  }
}

