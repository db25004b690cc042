/**
 * A star of network namespaces for the relay's tests: a relay host R in the
 * middle and leaves (a, b, ...) around it, each joined to R by its own veth
 * pair and /30 (10.211.K.4i+1 on R, 10.211.K.4i+2 on leaf i). R answers on
 * one service address, 10.210.K.1 on its loopback, which every leaf reaches
 * through its default route via its R end; R does not forward
 * (net.ipv4.ip_forward = 0), so a leaf's packet for another leaf dies in R.
 * Every leaf reaches R, no leaf reaches another: whatever goes from A to B
 * went through a process on R. The first relay test proves this for real
 * (`connect`, `listen`).
 *
 * Built on test/support/netns.ts's primitives, as bridge.ts is: the same
 * names (found by ourNamespaces() and reapStale()), the same exit safety
 * net, processes killed by its killAll().
 */
import { fileURLToPath } from 'node:url';
import { withRetryDefault } from './cli.js';
import { CLI, canUseNetns, ip, netnsUnavailable, spawnIn, trackNamespace, waitCarrier, type NsProcess } from './netns.js';

/** Listen and connect probes (a standalone process in a namespace). */
export const REACH = fileURLToPath(new URL('./reach.mjs', import.meta.url));
/** Junk and idle clients for a relay (a standalone process in a namespace). */
export const JUNK = fileURLToPath(new URL('./junk.mjs', import.meta.url));

/** The relay host's name in `spawn`, `ferry`, `connect` and `listen`. */
export const RELAY_HOST = 'r';

export interface StarHost {
  /** Namespace name. */
  ns: string;
  /** The address others dial: R's service address, or the leaf's own. */
  addr: string;
}

export interface Leaf extends StarHost {
  /** The leaf's veth device (inside `ns`). */
  dev: string;
  /** The R end of this leaf's link: its device (inside R) and address, the leaf's default gateway. */
  peerDev: string;
  gateway: string;
}

export type Reach = { event: 'connected'; greeting: string } | { event: 'failed'; code: string; message: string } | { event: 'timeout'; ms: number };

export interface Star {
  relay: StarHost;
  leaves: Record<string, Leaf>;
  /** Every namespace of this star, R first. */
  namespaces(): string[];
  /** Runs a command inside R (`RELAY_HOST`) or a leaf. */
  spawn(host: string, argv: string[]): NsProcess;
  /** `node dist/ferry.mjs ARGS` inside R or a leaf (`send` without --retries or --retry-delay gets `--retries 0`, as everywhere in the tests). */
  ferry(host: string, args: string[]): NsProcess;
  /** A listener on `host`'s own address, port 0, that greets each connection with the host's name; resolves once listening. */
  listen(host: string): Promise<{ proc: NsProcess; port: number }>;
  /** A TCP connect from `host` to addr:port that waits at most `ms` for the listener's greeting. */
  connect(host: string, addr: string, port: number, ms: number): Promise<Reach>;
  /** Kills the processes started in the star, removes its devices and namespaces. Idempotent; never throws. */
  destroy(): Promise<void>;
}

let counter = 0;
const live = new Set<Star>();

/** Creates R and one leaf per name, linked and addressed as the module comment says. */
export async function createStar(names: readonly string[] = ['a', 'b']): Promise<Star> {
  if (!canUseNetns) throw new Error(`network namespaces are not available: ${netnsUnavailable}`);
  if (names.length === 0 || names.length > 63 || names.includes(RELAY_HOST) || new Set(names).size !== names.length) throw new Error(`bad leaf names ${names.join(',')}`);
  const n = ++counter;
  const k = ((process.pid + n) % 250) + 1;
  // Named as netns.ts names its own (`fe2e-PID-...`), so its reapStale() and ourNamespaces() see them too.
  const nsName = (host: string): string => `fe2e-${process.pid}-star${n}-${host}`;
  const relay: StarHost = { ns: nsName(RELAY_HOST), addr: `10.210.${k}.1` };
  const leaves: Record<string, Leaf> = {};
  for (const [i, name] of names.entries()) {
    // Device names: at most 15 characters; they live only inside the namespaces, so the index is enough.
    leaves[name] = {
      ns: nsName(name),
      addr: `10.211.${k}.${4 * i + 2}`,
      dev: `star${n}l${i}`,
      peerDev: `star${n}r${i}`,
      gateway: `10.211.${k}.${4 * i + 1}`,
    };
  }
  const procs = new Set<NsProcess>();
  const host = (name: string): StarHost => {
    const found = name === RELAY_HOST ? relay : leaves[name];
    if (!found) throw new Error(`no host ${name} in this star`);
    return found;
  };
  let destroyed: Promise<void> | null = null;

  const star: Star = {
    relay,
    leaves,
    namespaces: () => [relay.ns, ...Object.values(leaves).map((l) => l.ns)],
    spawn(name, argv) {
      const p = spawnIn(host(name).ns, argv);
      procs.add(p);
      return p;
    },
    ferry(name, args) {
      return star.spawn(name, [process.execPath, CLI, ...withRetryDefault(args)]);
    },
    async listen(name) {
      const proc = star.spawn(name, [process.execPath, REACH, 'listen', host(name).addr, name]);
      const listening = await proc.waitFor((e) => e.event === 'listening');
      return { proc, port: listening.port as number };
    },
    async connect(name, addr, port, ms) {
      const proc = star.spawn(name, [process.execPath, REACH, 'connect', addr, String(port), String(ms)]);
      // The probe bounds itself by `ms`; this bound only covers its start and exit on a busy machine.
      await proc.exit(ms + 10_000);
      const result = proc.events[0];
      if (!result) throw new Error(`connect probe printed nothing: ${proc.stderr()}`);
      return result as unknown as Reach;
    },
    destroy() {
      destroyed ??= (async () => {
        live.delete(star);
        for (const p of procs) if (p.exitedAt() === undefined) p.child.kill('SIGKILL');
        await Promise.all([...procs].map((p) => p.exit(5000).catch(() => undefined)));
        // Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for (const ns of star.namespaces()) {
          await ip('netns', 'del', ns).catch(() => undefined);
          trackNamespace(ns, false);
        }
      })();
      return destroyed;
    },
  };
  live.add(star);

  try {
    for (const ns of star.namespaces()) {
      trackNamespace(ns, true);
      await ip('netns', 'add', ns);
    }
    await ip('-n', relay.ns, 'link', 'set', 'dev', 'lo', 'up');
    await ip('-n', relay.ns, 'addr', 'add', `${relay.addr}/32`, 'dev', 'lo');
    // Explicit, though a new namespace starts with it off: R must never join two leaves by itself.
    await ip('netns', 'exec', relay.ns, 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward');
    for (const leaf of Object.values(leaves)) {
      await ip('link', 'add', 'name', leaf.dev, 'netns', leaf.ns, 'type', 'veth', 'peer', 'name', leaf.peerDev, 'netns', relay.ns);
      await ip('-n', relay.ns, 'addr', 'add', `${leaf.gateway}/30`, 'dev', leaf.peerDev);
      await ip('-n', relay.ns, 'link', 'set', 'dev', leaf.peerDev, 'up');
      await ip('-n', leaf.ns, 'addr', 'add', `${leaf.addr}/30`, 'dev', leaf.dev);
      await ip('-n', leaf.ns, 'link', 'set', 'dev', 'lo', 'up');
      await ip('-n', leaf.ns, 'link', 'set', 'dev', leaf.dev, 'up');
      await ip('-n', leaf.ns, 'route', 'add', 'default', 'via', leaf.gateway);
    }
    await waitCarrier(Object.values(leaves).flatMap((l) => [l, { ns: relay.ns, dev: l.peerDev, addr: l.gateway }]));
  } catch (err) {
    await star.destroy();
    throw err;
  }
  return star;
}

/** Destroys every star still alive (for afterAll). Never throws. */
export async function destroyStars(): Promise<void> {
  await Promise.all([...live].map((s) => s.destroy()));
}
