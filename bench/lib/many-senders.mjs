#!/usr/bin/env node
// Sends every file given on the command line at once, each on its own
// connection, from this one process, through ferry's library API:
//   node many-senders.mjs CODE|--insecure HOST PORT FILE...
// It measures what one receiver does with many concurrent senders without
// paying one Node start-up per sender. Exits 0 only if every file verified.
import { send } from '../../dist/index.js';

const [security, host, port, ...files] = process.argv.slice(2);
const secure = security === '--insecure' ? { insecure: true } : { code: security };
const summaries = await Promise.all(files.map((file) => send({ ...secure, files: [file], host, port: Number(port) })));
const failed = summaries.filter((s) => s.exitCode !== 0);
for (const s of failed) process.stderr.write(`${s.files[0]?.name}: ${s.files[0]?.message}\n`);
process.exit(failed.length === 0 ? 0 : 1);
