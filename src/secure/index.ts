/** Pairing by code (docs/security.md): code format, SPAKE2, the wrong-code limiter, and the handshake that ends in TLS 1.3. */
export { CODE_ENTROPY_BITS, codeNumber, generateCode, normalizeCode } from './code.js';
export { secureClient, secureServer, type HandshakeOptions } from './handshake.js';
export { prepareClient } from './password.js';
export { TLS_CIPHERS } from './tls.js';
export { CodeGuard, DEFAULT_RATE_LIMIT, MAX_WAITING_PER_SOURCE, sourceKey } from './limiter.js';
export { passwordScalar } from './spake2.js';
