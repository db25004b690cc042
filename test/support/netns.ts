/**
 * Two network namespaces joined by a veth pair, for end-to-end tests that
 * need a real link: rate limits (tc tbf), a link taken down and up, a relay
 * that adds delay. Linux, root and iproute2 only: `canUseNetns` says whether
 * this machine allows it, and `netnsUnavailable` why not.
 *
 * Every namespace and device is named after this process (pid + counter), so
 * parallel runs never collide, and is removed by destroy(), by destroyAll()
 * (for afterAll) and, as a last resort, when the process exits. Addresses come
 * from a private /30 (10.201.X.0/30) that exists only inside the two
 * namespaces, which have no other interface than loopback and no default
 * route: traffic can only go from one namespace to the other.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { TEST_CODE, withRetryDefault } from './cli.js';
import { spawnJson, type JsonEvent, type JsonProcess } from './process.js';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI as tsc builds it (`npx tsc -p tsconfig.json`). */
export const CLI = fileURLToPath(new URL('../../dist/ferry.mjs', import.meta.url));
/** The delaying TCP relay (a standalone process, started inside a namespace). */
export const RELAY = fileURLToPath(new URL('./relay.mjs', import.meta.url));

/** Every `ip`/`tc` call is bounded by this. */
const COMMAND_TIMEOUT_MS = 10_000;
/** Prefix of everything this module creates; the pid follows, so stale leftovers can be told apart. */
const PREFIX = 'fe2e';

function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

const IP = findTool('ip');
const TC = findTool('tc');

function runSync(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim();
  return { ok: r.status === 0 && !r.error, out };
}

/** Tries what the tests need for real: create and delete a namespace with a unique throwaway name. */
function probe(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  if (!IP) return 'no `ip` command (iproute2)';
  if (!existsSync(CLI)) return `${CLI} is missing: run \`npx tsc -p tsconfig.json\``;
  const name = `${PREFIX}-${process.pid}-probe-${Math.random().toString(36).slice(2, 8)}`;
  const add = runSync(IP, ['netns', 'add', name]);
  if (!add.ok) {
    runSync(IP, ['netns', 'del', name]); // in case it got half-way
    return `\`ip netns add\` is not permitted here: ${add.out || 'failed'}`;
  }
  const del = runSync(IP, ['netns', 'del', name]);
  if (!del.ok) return `\`ip netns del\` failed: ${del.out}`;
  return null;
}

/** Why the namespace tests cannot run here, or null when they can. */
export const netnsUnavailable: string | null = probe();
export const canUseNetns = netnsUnavailable === null;

/** Runs `ip`/`tc` (or any command) to its end, bounded; rejects with its output on failure. */
export function sh(cmd: string, args: string[], ms = COMMAND_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: still running after ${ms} ms`));
    }, ms);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim() || out.trim()}`));
    });
  });
}

/** `ip ARGS`, bounded (bridge.ts builds its LAN with it). */
export function ip(...args: string[]): Promise<string> {
  if (!IP) throw new Error('no `ip` command');
  return sh(IP, args);
}

// ---------------------------------------------------------------------------
// Processes inside a namespace

export type Event = JsonEvent;
export type NsProcess = JsonProcess;

const running = new Set<{ child: ChildProcess; exited: Promise<number> }>();

/** Runs `argv` inside namespace `ns` (`ip netns exec`, which execs: the child is the command itself). */
export function spawnIn(ns: string, argv: string[]): NsProcess {
  if (!IP) throw new Error('no `ip` command');
  const proc = spawnJson(IP, ['netns', 'exec', ns, ...argv]);
  const entry = { child: proc.child, exited: proc.exited };
  running.add(entry);
  void proc.exited.then(() => running.delete(entry));
  return proc;
}

/** SIGKILLs every process started by spawnIn that is still running, and waits (bounded) until they are gone. */
export async function killAll(ms = 5000): Promise<void> {
  const entries = [...running];
  for (const { child } of entries) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(entries.map((e) => e.exited)),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------
// The link

export type Side = 'sender' | 'receiver';

export interface End {
  /** Namespace name. */
  ns: string;
  /** This end's veth device (inside `ns`). */
  dev: string;
  /** This end's IPv4 address (without the /30). */
  addr: string;
}

export interface Link {
  sender: End;
  receiver: End;
  /** Runs a command inside one side's namespace. */
  spawn(side: Side, argv: string[]): NsProcess;
  /** `node dist/ferry.mjs ARGS` (the bin) inside one side's namespace. */
  ferry(side: Side, args: string[]): NsProcess;
  /** Rate-limits what leaves `side`'s veth: `tc qdisc replace ... root tbf rate RATE burst 32kbit latency 400ms`. */
  shape(side: Side, rate: string): Promise<void>;
  /** `ip link set DEV down` on one side's veth. */
  down(side: Side): Promise<void>;
  /** `ip link set DEV up` on one side's veth, then waits (bounded) until both ends have carrier again. */
  up(side: Side): Promise<void>;
  /** The qdisc line of one side's veth (for logs). */
  qdisc(side: Side): Promise<string>;
  /** Kills the processes started in these namespaces and removes devices and namespaces. Idempotent; never throws. */
  destroy(): Promise<void>;
}

let counter = 0;
const live = new Set<Link>();
/** Names created and not yet confirmed deleted, for the process 'exit' safety net. */
const createdNamespaces = new Set<string>();

/** Creates two namespaces and a veth pair between them, with 10.201.X.1/30 (sender) and 10.201.X.2/30 (receiver). */
export async function createLink(): Promise<Link> {
  if (!canUseNetns) throw new Error(`network namespaces are not available: ${netnsUnavailable}`);
  const n = ++counter;
  const id = `${process.pid}-${n}`;
  const subnet = ((process.pid + n) % 250) + 1;
  // Device names: at most 15 characters (IFNAMSIZ - 1): "fe" + pid (<= 7 digits) + "s"/"r" + counter.
  const sender: End = { ns: `${PREFIX}-${id}-s`, dev: `fe${process.pid}s${n}`, addr: `10.201.${subnet}.1` };
  const receiver: End = { ns: `${PREFIX}-${id}-r`, dev: `fe${process.pid}r${n}`, addr: `10.201.${subnet}.2` };
  if (sender.dev.length > 15) throw new Error(`device name ${sender.dev} is over 15 characters`);
  const procs = new Set<NsProcess>();
  const end = (side: Side): End => (side === 'sender' ? sender : receiver);
  let destroyed: Promise<void> | null = null;

  const link: Link = {
    sender,
    receiver,
    spawn(side, argv) {
      const p = spawnIn(end(side).ns, argv);
      procs.add(p);
      return p;
    },
    ferry(side, args) {
      // Encrypted, as ferry runs by default: the test code on both sides unless a test says otherwise.
      const coded = withRetryDefault(
        args.includes('--insecure') || args.includes('--code') || (args[0] !== 'send' && args[0] !== 'receive') ? args : [...args, '--code', TEST_CODE],
      );
      return link.spawn(side, [process.execPath, CLI, ...coded]);
    },
    async shape(side, rate) {
      if (!TC) throw new Error('no `tc` command');
      const e = end(side);
      await sh(IP!, ['netns', 'exec', e.ns, TC, 'qdisc', 'replace', 'dev', e.dev, 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', '400ms']);
    },
    async down(side) {
      const e = end(side);
      await ip('-n', e.ns, 'link', 'set', 'dev', e.dev, 'down');
    },
    async up(side) {
      const e = end(side);
      await ip('-n', e.ns, 'link', 'set', 'dev', e.dev, 'up');
      await waitCarrier([sender, receiver]);
    },
    async qdisc(side) {
      const e = end(side);
      return (await sh(IP!, ['netns', 'exec', e.ns, TC ?? 'tc', 'qdisc', 'show', 'dev', e.dev])).trim();
    },
    destroy() {
      destroyed ??= (async () => {
        live.delete(link);
        // Processes first: a namespace lives on while a process is inside it.
        for (const p of procs) if (p.exitedAt() === undefined) p.child.kill('SIGKILL');
        await Promise.all([...procs].map((p) => p.exit(5000).catch(() => undefined)));
        // Deleting one veth end deletes its peer; do it explicitly, so the
        // devices go at once even if something still holds a namespace.
        await ip('-n', sender.ns, 'link', 'del', 'dev', sender.dev).catch(() => undefined);
        await ip('-n', receiver.ns, 'link', 'del', 'dev', receiver.dev).catch(() => undefined);
        for (const ns of [sender.ns, receiver.ns]) {
          await ip('netns', 'del', ns).catch(() => undefined);
          createdNamespaces.delete(ns);
        }
      })();
      return destroyed;
    },
  };
  live.add(link);

  try {
    for (const e of [sender, receiver]) {
      createdNamespaces.add(e.ns);
      await ip('netns', 'add', e.ns);
    }
    // Created directly inside the namespaces: the devices never appear in the root namespace.
    await ip('link', 'add', 'name', sender.dev, 'netns', sender.ns, 'type', 'veth', 'peer', 'name', receiver.dev, 'netns', receiver.ns);
    for (const e of [sender, receiver]) {
      await ip('-n', e.ns, 'addr', 'add', `${e.addr}/30`, 'dev', e.dev);
      await ip('-n', e.ns, 'link', 'set', 'dev', 'lo', 'up');
      await ip('-n', e.ns, 'link', 'set', 'dev', e.dev, 'up');
    }
    await waitCarrier([sender, receiver]);
  } catch (err) {
    await link.destroy();
    throw err;
  }
  return link;
}

/** Polls until every device is operationally UP (carrier on both ends), bounded. */
export async function waitCarrier(ends: End[], ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const states = await Promise.all(ends.map(async (e) => (await ip('-n', e.ns, '-br', 'link', 'show', 'dev', e.dev)).trim().split(/\s+/)[1]));
    if (states.every((s) => s === 'UP')) return;
    if (performance.now() > deadline) throw new Error(`link not up after ${ms} ms: ${ends.map((e, i) => `${e.ns}/${e.dev} ${states[i]}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Destroys every link still alive (for afterAll). Never throws. */
export async function destroyAll(): Promise<void> {
  await Promise.all([...live].map((l) => l.destroy()));
  await killAll();
}

/** Names of namespaces of ours that exist right now (this process's, or all of this module's with `anyPid`). */
export async function ourNamespaces(anyPid = false): Promise<string[]> {
  const out = await ip('netns', 'list');
  const mine = anyPid ? `${PREFIX}-` : `${PREFIX}-${process.pid}-`;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.startsWith(mine));
}

/**
 * Removes namespaces left by earlier runs that died without cleaning up
 * (their pid is in the name and no longer alive). Never touches another
 * live process's namespaces.
 */
export async function reapStale(): Promise<string[]> {
  const reaped: string[] = [];
  for (const name of await ourNamespaces(true)) {
    const pid = Number(/^fe2e-(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    await ip('netns', 'del', name).catch(() => undefined);
    reaped.push(name);
  }
  return reaped;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Registers a namespace for the exit safety net below (created: true) or takes it off (false): for bridge.ts. */
export function trackNamespace(name: string, created: boolean): void {
  if (created) createdNamespaces.add(name);
  else createdNamespaces.delete(name);
}

// Last resort if the worker exits without running afterAll: synchronous and best effort.
process.once('exit', () => {
  if (!IP) return;
  for (const { child } of running) child.kill('SIGKILL');
  for (const ns of createdNamespaces) spawnSync(IP, ['netns', 'del', ns], { timeout: 2000 });
});
