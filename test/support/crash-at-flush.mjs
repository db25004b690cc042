/**
 * Preloaded into a `ferry receive` (`node --import`) by test/group-commit.test.ts:
 * the FERRY_TEST_KILL_AT_FLUSH-th fdatasync() call kills the process
 * (SIGKILL, as a power cut stops it: nothing after runs) before it reaches
 * the disk, and every fdatasync() that completed first writes the inode of
 * its file to FERRY_TEST_SYNCED_LOG, one per line.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const log = process.env.FERRY_TEST_SYNCED_LOG;
const killAt = Number(process.env.FERRY_TEST_KILL_AT_FLUSH);
const real = fs.fdatasync;
let calls = 0;
fs.fdatasync = (fd, callback) => {
  if (++calls === killAt) process.kill(process.pid, 'SIGKILL');
  real(fd, (err) => {
    if (!err) fs.appendFileSync(log, `${fs.fstatSync(fd).ino}\n`);
    callback(err);
  });
};
// ferry's `import { fdatasync } from 'node:fs'` sees the wrapper.
syncBuiltinESMExports();
