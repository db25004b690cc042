/**
 * The programs compared: ferry and the baselines. Each tool says whether it
 * can run here (and which Debian package to install if not), and how to do
 * one transfer in each mode:
 *   file      one file, one sender, one receiver
 *   dir       a directory tree
 *   parallel  many files, one sender process per file, all at once
 *
 * "Durable" tools (ferry by default, nc-durable) have flushed every
 * received file's data to disk (fdatasync) before the receiver exits; the
 * others leave it in the page cache. The clock includes that flush.
 *
 * A transfer returns its processes and timestamps; the runner turns them
 * into numbers, so every tool is measured the same way. Receivers that are
 * daemons (sshd, rsync --daemon) are marked, because for the fixed-cost
 * workload their start-up is not part of a transfer.
 *
 * Every daemon here is started per run with a fresh port and exits (or is
 * stopped) at the end of that run, so GNU time can account its whole
 * server side (including the workers it forks) to that one transfer.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  freePort,
  programHasChildren,
  signalProgram,
  sleep,
  waitForListen,
  which,
  withTimeout,
} from './processes.mjs';

const LOOPBACK = '127.0.0.1';

/** `ferry send DIR` exists: the "10k" workload includes ferry. */
const FERRY_SENDS_DIRECTORIES = true;

/** One process, many library senders at once (the 'parallel-inproc' mode). */
const MANY_SENDERS = new URL('./many-senders.mjs', import.meta.url).pathname;

/** How long a daemon may take to finish after its client is done. */
const DAEMON_EXIT_MS = 10_000;

/** A skip reason that says what to install. */
function missing(what, debianPackage) {
  return `${what} not found (apt-get install ${debianPackage})`;
}

/** Throws with the process's stderr if it did not exit with one of `codes`. */
function expectExit(proc, result, codes = [0]) {
  if (codes.includes(result.code)) return;
  const how = result.error ? `could not start (${result.error})` : result.signal ? `died of ${result.signal}` : `exited ${result.code}`;
  throw new Error(`${proc.label} ${how}${proc.stderrTail() ? `: ${proc.stderrTail()}` : ''}`);
}

async function waitAll(procs, codes) {
  const results = await Promise.all(procs.map((p) => p.exit));
  procs.forEach((p, i) => expectExit(p, results[i], codes));
  return Math.max(...results.map((r) => r.at));
}

/** The shape every transfer returns to the runner. */
function transferResult({ senders, receivers, receiverStartedAt, doneAt, daemon = false }) {
  return { senders, receivers, receiverStartedAt, senderStartedAt: Math.min(...senders.map((p) => p.startedAt)), doneAt, daemon };
}

// ---------------------------------------------------------------- ferry

/** The code of every encrypted ferry run of the harness (the receiver would print a fresh one). */
const BENCH_CODE = '7-orbit-velvet-cactus';

/**
 * `insecure`: plaintext ferry (both sides --insecure), to measure what encryption costs.
 * `noFsync`: the receiver also gets --no-fsync, to measure what the flush costs.
 */
function ferryTool({ cli, receiveArgs: extraReceiveArgs, insecure = false, noFsync = false }) {
  const node = process.execPath;
  const security = insecure ? ['--insecure'] : ['--code', BENCH_CODE];
  // Last, so it wins over a --fsync in --ferry-args.
  const receiveArgs = [...extraReceiveArgs, ...(noFsync ? ['--no-fsync'] : [])];

  // Every ferry command line of the harness is built here, and only here.
  const receiveArgv = (dst, once) => [node, cli, 'receive', '--dir', dst, '--host', LOOPBACK, '--port', '0', ...(once ? ['--once'] : []), '--json', ...security, ...receiveArgs];
  /** `sources`: files or directories (a directory arrives as DST/<its base name>/...). */
  const sendArgv = (sources, port) => [node, cli, 'send', ...sources, '--to', `${LOOPBACK}:${port}`, '-q', ...security];

  /** Starts `ferry receive` on port 0 and learns the port from its first JSON line. */
  async function startReceiver(scope, dst, once) {
    const proc = scope.launch({ label: 'ferry receive', argv: receiveArgv(dst, once), stdout: 'pipe' });
    const events = { received: 0, errors: [] };
    const port = await new Promise((resolve, reject) => {
      proc.exit.then((r) => reject(new Error(`ferry receive exited (${r.code}) before listening: ${proc.stderrTail()}`)));
      if (!proc.child.stdout) return;
      createInterface({ input: proc.child.stdout }).on('line', (line) => {
        let event;
        try {
          event = JSON.parse(line);
        } catch {
          return; // not ours to judge; the exit code is what counts
        }
        if (event.event === 'listening') resolve(event.port);
        else if (event.event === 'received') events.received++;
        else if (event.event === 'error') events.errors.push(event.message);
      });
    });
    return { proc, port, events };
  }

  /** One receiver with --once, one sender of `sources`: both must exit 0. */
  async function oneToOne(scope, sources, dst) {
    const receiver = await startReceiver(scope, dst, true);
    const sender = scope.launch({ label: 'ferry send', argv: sendArgv(sources, receiver.port) });
    const doneAt = await waitAll([sender, receiver.proc]);
    return transferResult({ senders: [sender], receivers: [receiver.proc], receiverStartedAt: receiver.proc.startedAt, doneAt });
  }

  return {
    name: `ferry${insecure ? '-plain' : ''}${noFsync ? '-nofsync' : ''}`,
    check: () => (existsSync(cli) ? null : `${cli} not found (npm run build)`),
    version: () => spawnSync(node, [cli, '--version'], { encoding: 'utf8', timeout: 10_000 }).stdout.trim(),
    unsupported: FERRY_SENDS_DIRECTORIES ? {} : { dir: 'directories not supported yet' },
    transfer: {
      file: (scope, payload, dst) => oneToOne(scope, [payload.path], dst),
      dir: (scope, payload, dst) => oneToOne(scope, [payload.path], dst),
      /**
       * One long-running receiver, every sender at once; the receiver is
       * stopped with SIGINT once all senders are done (it then exits 130).
       */
      parallel: async (scope, payload, dst) => {
        const receiver = await startReceiver(scope, dst, false);
        const senders = payload.paths.map((file, i) => scope.launch({ label: `ferry send #${i + 1}`, argv: sendArgv([file], receiver.port) }));
        const doneAt = await waitAll(senders);
        signalProgram(receiver.proc, 'SIGINT');
        await waitAll([receiver.proc], [0, 130]);
        if (receiver.events.received !== payload.files) {
          throw new Error(`ferry receive reported ${receiver.events.received} files received, want ${payload.files}${receiver.events.errors.length ? `: ${receiver.events.errors[0]}` : ''}`);
        }
        return transferResult({ senders, receivers: [receiver.proc], receiverStartedAt: receiver.proc.startedAt, doneAt });
      },
      /**
       * The same, but every sender is a connection of one process using the
       * library (bench/lib/many-senders.mjs): the receiver's concurrency
       * without a hundred Node start-ups.
       */
      'parallel-inproc': async (scope, payload, dst) => {
        const receiver = await startReceiver(scope, dst, false);
        const sender = scope.launch({ label: 'ferry library senders', argv: [node, MANY_SENDERS, insecure ? '--insecure' : BENCH_CODE, LOOPBACK, String(receiver.port), ...payload.paths] });
        const doneAt = await waitAll([sender]);
        signalProgram(receiver.proc, 'SIGINT');
        await waitAll([receiver.proc], [0, 130]);
        if (receiver.events.received !== payload.files) {
          throw new Error(`ferry receive reported ${receiver.events.received} files received, want ${payload.files}`);
        }
        return transferResult({ senders: [sender], receivers: [receiver.proc], receiverStartedAt: receiver.proc.startedAt, doneAt });
      },
    },
  };
}

// ---------------------------------------------------------------- nc

/** coreutils `sync` that can fdatasync named files (`-d FILE...`, coreutils >= 8.24). */
function syncTakesFiles(sync) {
  if (!sync) return false;
  const help = spawnSync(sync, ['--help'], { encoding: 'utf8', timeout: 5000 });
  return /--data/.test(help.stdout ?? '');
}

/**
 * `durable`: the receiver flushes what it wrote before it exits, the
 * guarantee `ferry receive` gives by default (fdatasync of each file's
 * data; neither ferry nor this fsyncs the directories):
 *  - one file: `nc -d -l > FILE && sync -d FILE`. This is what
 *    `dd of=FILE conv=fdatasync` does, without putting a pipe and a second
 *    copy between nc and the file, so the row differs from plain `nc` by
 *    the flush only.
 *  - a tree: `nc -d -l | tar -x`, then `sync -d` on every file received
 *    (find ... -exec sync -d {} +). That is the narrowest flush that makes
 *    the received data durable: `sync -f DIR` (syncfs) and plain `sync`
 *    flush the whole file system (here the one disk everyone on this
 *    machine writes to), so they would time other people's writeback and
 *    promise more than ferry does. Note that coreutils sync flushes the
 *    files one after another, where ferry keeps many flushes in flight.
 */
function ncTool({ durable = false } = {}) {
  const nc = which('nc');
  const tar = which('tar');
  const find = which('find');
  const sync = which('sync');
  const sh = which('sh') ?? '/bin/sh';
  const suffix = durable ? ' && sync' : '';

  /** `nc -d -l` into a file (then its flush, if durable); resolves when it is listening. */
  async function listenInto(scope, dstFile, label = 'nc -l') {
    const port = await freePort();
    const proc = durable
      ? scope.launch({ label: `${label}${suffix}`, argv: [sh, '-c', 'nc -d -l "$1" "$2" > "$3" && exec sync -d "$3"', 'sh', LOOPBACK, String(port), dstFile] })
      : scope.launch({ label, argv: [nc, '-d', '-l', LOOPBACK, String(port)], stdout: { file: dstFile } });
    await waitForListen(port, proc);
    return { proc, port };
  }

  const sendFrom = (scope, srcFile, port, label = 'nc -N') =>
    scope.launch({ label, argv: [nc, '-N', LOOPBACK, String(port)], stdin: { file: srcFile } });

  const unsupported = {};
  if (!tar) unsupported.dir = missing('tar', 'tar');
  else if (durable && !find) unsupported.dir = missing('find', 'findutils');

  return {
    name: durable ? 'nc-durable' : 'nc',
    check: () => {
      if (!nc) return missing('nc', 'netcat-openbsd');
      if (durable && !syncTakesFiles(sync)) return `${sync ?? 'sync'} cannot flush single files (sync -d FILE: coreutils >= 8.24)`;
      const help = spawnSync(nc, ['-h'], { encoding: 'utf8', timeout: 5000 });
      // Other netcats lack -N (shut down the socket after EOF), which the sender needs.
      return /OpenBSD/.test(`${help.stdout}${help.stderr}`) ? null : `${nc} is not OpenBSD netcat (apt-get install netcat-openbsd)`;
    },
    version: () => (spawnSync(nc, ['-h'], { encoding: 'utf8', timeout: 5000 }).stderr.split('\n')[0] ?? '').trim(),
    unsupported,
    transfer: {
      file: async (scope, payload, dst) => {
        const receiver = await listenInto(scope, join(dst, basename(payload.path)));
        const sender = sendFrom(scope, payload.path, receiver.port);
        const doneAt = await waitAll([sender, receiver.proc]);
        return transferResult({ senders: [sender], receivers: [receiver.proc], receiverStartedAt: receiver.proc.startedAt, doneAt });
      },
      /** tar | nc: the usual way to push a tree through a raw socket; the directory itself goes too, as with ferry. */
      dir: async (scope, payload, dst) => {
        const port = await freePort();
        // find runs only once tar has succeeded; its exit status is then the receiver's.
        const flush = durable ? ' && find "$3" -type f -exec sync -d {} +' : '';
        const receiver = scope.launch({
          label: `nc -l | tar -x${suffix}`,
          argv: [sh, '-c', `nc -d -l "$1" "$2" | tar -x -C "$3"${flush}`, 'sh', LOOPBACK, String(port), dst],
        });
        await waitForListen(port, receiver);
        const sender = scope.launch({
          label: 'tar -c | nc -N',
          argv: [sh, '-c', 'tar -c -C "$1" "$2" | nc -N "$3" "$4"', 'sh', dirname(payload.path), basename(payload.path), LOOPBACK, String(port)],
        });
        const doneAt = await waitAll([sender, receiver]);
        return transferResult({ senders: [sender], receivers: [receiver], receiverStartedAt: receiver.startedAt, doneAt });
      },
      /** One nc pair per file, all at once: the raw ceiling for many streams. */
      parallel: async (scope, payload, dst) => {
        const receivers = [];
        for (const [i, file] of payload.paths.entries()) receivers.push(await listenInto(scope, join(dst, basename(file)), `nc -l #${i + 1}`));
        const senders = payload.paths.map((file, i) => sendFrom(scope, file, receivers[i].port, `nc -N #${i + 1}`));
        const procs = receivers.map((r) => r.proc);
        const doneAt = await waitAll([...senders, ...procs]);
        return transferResult({ senders, receivers: procs, receiverStartedAt: Math.min(...procs.map((p) => p.startedAt)), doneAt });
      },
    },
  };
}

// ---------------------------------------------------------------- scp

/**
 * scp to a loopback sshd that this harness starts with its own host key,
 * client key and config (no system config, no PAM, no pid file). sshd runs
 * in debug mode (-d) because that mode serves exactly one connection in the
 * foreground and exits: the run then gets the server side's CPU and RSS.
 */
function scpTool({ workDir }) {
  const scp = which('scp');
  const sshKeygen = which('ssh-keygen');
  const sshd = which('sshd');
  const sftpServer = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/libexec/sftp-server'].find(existsSync);
  const dir = join(workDir, 'ssh');
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  const config = join(dir, 'sshd_config');

  return {
    name: 'scp',
    check: () => {
      if (!scp || !sshKeygen) return missing('scp or ssh-keygen', 'openssh-client');
      if (!sshd) return missing('sshd', 'openssh-server');
      if (process.getuid?.() !== 0) return 'needs root (the loopback sshd logs in as root with a key)';
      return null;
    },
    version: () => (spawnSync(which('ssh') ?? 'ssh', ['-V'], { encoding: 'utf8', timeout: 5000 }).stderr ?? '').trim(),
    /** Keys and config, once per invocation. /run/sshd is sshd's privilege-separation dir. */
    setup: () => {
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const key of [hostKey, clientKey]) {
        const r = spawnSync(sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-f', key], { encoding: 'utf8', timeout: 30_000 });
        if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
      }
      writeFileSync(
        config,
        [
          `ListenAddress ${LOOPBACK}`,
          `HostKey ${hostKey}`,
          'PermitRootLogin prohibit-password',
          'UsePAM no',
          `AuthorizedKeysFile ${clientKey}.pub`,
          // The key lives under the world-writable temp dir, which StrictModes refuses.
          'StrictModes no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PidFile none',
          // scp speaks SFTP by default since OpenSSH 9.
          `Subsystem sftp ${sftpServer ?? 'internal-sftp'}`,
          '',
        ].join('\n'),
      );
    },
    unsupported: { dir: 'not measured for many small files', parallel: 'not measured for concurrent senders' },
    transfer: {
      file: async (scope, payload, dst) => {
        const port = await freePort();
        const daemon = scope.launch({ label: 'sshd -d', argv: [sshd, '-d', '-e', '-f', config, '-p', String(port)] });
        await waitForListen(port, daemon);
        const client = scope.launch({
          label: 'scp',
          argv: [
            scp, '-F', '/dev/null', '-P', String(port), '-i', clientKey,
            '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
            payload.path, `root@${LOOPBACK}:${dst}/`,
          ],
        });
        const doneAt = await waitAll([client]);
        // sshd -d exits by itself after its one connection (status 255 is its normal goodbye).
        await withTimeout(waitAll([daemon], [0, 255]), DAEMON_EXIT_MS, null, 'sshd to exit');
        return transferResult({ senders: [client], receivers: [daemon], receiverStartedAt: daemon.startedAt, doneAt, daemon: true });
      },
    },
  };
}

// ---------------------------------------------------------------- rsync

/** rsync to an `rsync --daemon` on loopback, one module pointing at the run's destination. */
function rsyncTool({ workDir }) {
  const rsync = which('rsync');
  let configs = 0;

  function writeConfig(dst) {
    const file = join(workDir, `rsyncd-${++configs}.conf`);
    const asRoot = process.getuid?.() === 0;
    writeFileSync(
      file,
      [
        'use chroot = false',
        `log file = ${join(workDir, 'rsyncd.log')}`,
        '[bench]',
        `  path = ${dst}`,
        '  read only = false',
        // As root the daemon would otherwise drop to nobody, who cannot write there.
        ...(asRoot ? ['  uid = root', '  gid = root'] : []),
        '',
      ].join('\n'),
    );
    return file;
  }

  async function viaDaemon(scope, source, dst) {
    const port = await freePort();
    const daemon = scope.launch({
      label: 'rsync --daemon',
      argv: [rsync, '--daemon', '--no-detach', `--address=${LOOPBACK}`, `--port=${port}`, `--config=${writeConfig(dst)}`],
    });
    await waitForListen(port, daemon);
    const client = scope.launch({ label: 'rsync', argv: [rsync, '-a', source, `rsync://${LOOPBACK}:${port}/bench/`] });
    const doneAt = await waitAll([client]);
    // Let the per-connection worker finish (so its CPU is counted), then stop the daemon.
    const deadline = performance.now() + DAEMON_EXIT_MS;
    while (programHasChildren(daemon) && performance.now() < deadline) await sleep(5);
    signalProgram(daemon, 'SIGTERM');
    await withTimeout(waitAll([daemon], [0, 143, 20]), DAEMON_EXIT_MS, null, 'rsync --daemon to exit');
    return transferResult({ senders: [client], receivers: [daemon], receiverStartedAt: daemon.startedAt, doneAt, daemon: true });
  }

  return {
    name: 'rsync',
    check: () => (rsync ? null : missing('rsync', 'rsync')),
    version: () => (spawnSync(rsync, ['--version'], { encoding: 'utf8', timeout: 5000 }).stdout.split('\n')[0] ?? '').trim(),
    unsupported: { parallel: 'not measured for concurrent senders' },
    transfer: {
      file: (scope, payload, dst) => viaDaemon(scope, payload.path, dst),
      // No trailing slash: the directory itself is copied (DST/<name>/...), as ferry and tar|nc do.
      dir: (scope, payload, dst) => viaDaemon(scope, payload.path, dst),
    },
  };
}

export function makeTools({ cli, receiveArgs, workDir }) {
  return {
    ferry: ferryTool({ cli, receiveArgs }),
    'ferry-plain': ferryTool({ cli, receiveArgs, insecure: true }),
    'ferry-nofsync': ferryTool({ cli, receiveArgs, noFsync: true }),
    'ferry-plain-nofsync': ferryTool({ cli, receiveArgs, insecure: true, noFsync: true }),
    nc: ncTool(),
    'nc-durable': ncTool({ durable: true }),
    scp: scpTool({ workDir }),
    rsync: rsyncTool({ workDir }),
  };
}
