/**
 * Imported first by the CLI, next to threadpool.ts: a process-wide setting
 * that belongs to the `ferry` command, not to a program that embeds the
 * library (it would change that program's garbage collector).
 *
 * Every socket read arrives in a fresh buffer (64 KiB over TCP, 16 KiB
 * records through TLS) that V8 frees only when a scavenge finds it dead.
 * With the young generation allowed to grow (to 16 MiB a semi-space by
 * default), scavenges came about every 23 MiB of received data, and up to
 * 40 MiB of dead buffers stood in the receiver's resident set (peak RSS
 * 110-114 MiB for 1 GiB, against 66 MiB idle). Keeping the young generation
 * at its initial size makes scavenges come about every 10 MiB; each takes
 * 0.15-0.3 ms here (docs/performance.md, "Memory").
 *
 * The flag is read by V8 each time it would grow the young generation, so
 * setting it at start-up, before the first transfer, takes effect
 * (node --max-semi-space-size can only be given on the command line).
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--semi-space-growth-factor=1');
