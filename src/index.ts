/**
 * ferry as a library: the CLI is a thin layer over these.
 *
 * ```ts
 * import { receive, send } from 'ferry';
 * const rx = await receive({ dir: '/tmp/in', port: 0, host: '127.0.0.1', onEvent: console.log });
 * const summary = await send({ files: ['a.bin'], host: '127.0.0.1', port: rx.port });
 * await rx.close();
 * ```
 */
export { send, type SendOptions, type SendSummary, type FileResult } from './sender/index.js';
export { receive, DEFAULT_PORT, type ReceiveOptions, type Receiver } from './receiver/index.js';
export { DEFAULT_TIMEOUT_MS } from './connection.js';
// The relay server (`ferry relay`).
export { startRelay, type Relay, type RelayOptions, type RelayStats } from './relay/server.js';
export { RELAY_LIMITS, type RelayLimits } from './relay/limits.js';
export type { RelayEvent, RefusalReason } from './relay/log.js';
export { DEFAULT_CHUNK_SIZE } from './sender/source.js';
export { FerryError, type ErrorCode } from './protocol/errors.js';
export { ExitCode, exitCodeOf } from './exit-codes.js';
export type * from './events.js';
export * as protocol from './protocol/index.js';
