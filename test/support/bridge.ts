/**
 * k network namespaces on one Linux bridge: a LAN segment for the discovery
 * tests (lan.netns.e2e.test.ts). The bridge sits in a namespace of its own,
 * so nothing of this appears in the machine's own network: each host
 * namespace has loopback and one veth into the bridge, an address in a
 * private /24 (10.202.X.0/24) and no default route, so multicast and
 * broadcast reach the other hosts of the segment and nothing else.
 *
 * Names follow netns.ts (`fe2e-PID-...`, so its reapStale() and
 * ourNamespaces() see them too); every `ip` call is bounded there, and the
 * namespaces are removed by destroy(), by destroyAllLans() (afterAll) and by
 * netns.ts's exit safety net.
 */
import { CLI, canUseNetns, ip, netnsUnavailable, spawnIn, trackNamespace, waitCarrier, type NsProcess } from './netns.js';

export interface LanHost {
  /** Namespace name. */
  ns: string;
  /** Its veth device, inside `ns`. */
  dev: string;
  /** Its IPv4 address (without the /24). */
  addr: string;
}

export interface Lan {
  hosts: LanHost[];
  /** Runs `argv` inside host `i`'s namespace. */
  spawn(i: number, argv: string[]): NsProcess;
  /** `node dist/ferry.mjs ARGS` inside host `i` (no code added: each test says which). */
  ferry(i: number, args: string[]): NsProcess;
  /** The switch forwards no multicast to host `i` (snooping off, `mcast_flood off` on its port), as an access point that filters multicast; broadcast still passes. */
  multicastOff(i: number): Promise<void>;
  /** Deletes host `i`'s broadcast route for its /24 (table local): what it sends to X.255 then goes out as unicast to an address no one holds, and is lost. */
  broadcastOff(i: number): Promise<void>;
  /** Kills what runs in these namespaces and removes them. Idempotent; never throws. */
  destroy(): Promise<void>;
}

let counter = 0;
const live = new Set<Lan>();

/** Creates `k` hosts on one bridge, 10.202.X.(i+1)/24, all links up. */
export async function createLan(k: number): Promise<Lan> {
  if (!canUseNetns) throw new Error(`network namespaces are not available: ${netnsUnavailable}`);
  const n = ++counter;
  const subnet = ((process.pid + n) % 250) + 1;
  const switchNs = `fe2e-${process.pid}-lan${n}-br`;
  const hosts: LanHost[] = [];
  for (let i = 0; i < k; i++) {
    // At most 15 characters (IFNAMSIZ - 1): "fl" + pid (<= 7 digits) + counter + "h" + index.
    hosts.push({ ns: `fe2e-${process.pid}-lan${n}-h${i}`, dev: `fl${process.pid}${n}h${i}`, addr: `10.202.${subnet}.${i + 1}` });
  }
  if (hosts.some((h) => h.dev.length > 15)) throw new Error(`device name ${hosts[0]!.dev} is over 15 characters`);
  const procs = new Set<NsProcess>();
  const namespaces = [switchNs, ...hosts.map((h) => h.ns)];
  let destroyed: Promise<void> | null = null;

  const lan: Lan = {
    hosts,
    spawn(i, argv) {
      const p = spawnIn(hosts[i]!.ns, argv);
      procs.add(p);
      return p;
    },
    ferry(i, args) {
      return lan.spawn(i, [process.execPath, CLI, ...args]);
    },
    async multicastOff(i) {
      // Without snooping every multicast frame is flooded, and flooding skips a port with mcast_flood off.
      await ip('-n', switchNs, 'link', 'set', 'dev', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
      await ip('-n', switchNs, 'link', 'set', 'dev', `p${i}`, 'type', 'bridge_slave', 'mcast_flood', 'off');
    },
    async broadcastOff(i) {
      const h = hosts[i]!;
      await ip('-n', h.ns, 'route', 'del', 'broadcast', h.addr.replace(/\.\d+$/, '.255'), 'dev', h.dev, 'table', 'local');
    },
    destroy() {
      destroyed ??= (async () => {
        live.delete(lan);
        for (const p of procs) if (p.exitedAt() === undefined) p.child.kill('SIGKILL');
        await Promise.all([...procs].map((p) => p.exit(5000).catch(() => undefined)));
        // Deleting a namespace deletes the veth ends inside it, and with them their peers on the bridge.
        for (const ns of namespaces) {
          await ip('netns', 'del', ns).catch(() => undefined);
          trackNamespace(ns, false);
        }
      })();
      return destroyed;
    },
  };
  live.add(lan);

  try {
    for (const ns of namespaces) {
      trackNamespace(ns, true);
      await ip('netns', 'add', ns);
    }
    await ip('-n', switchNs, 'link', 'add', 'name', 'br0', 'type', 'bridge');
    await ip('-n', switchNs, 'link', 'set', 'dev', 'br0', 'up');
    for (const [i, h] of hosts.entries()) {
      const port = `p${i}`;
      await ip('link', 'add', 'name', h.dev, 'netns', h.ns, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs);
      await ip('-n', switchNs, 'link', 'set', 'dev', port, 'master', 'br0');
      await ip('-n', switchNs, 'link', 'set', 'dev', port, 'up');
      await ip('-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'brd', '+', 'dev', h.dev);
      await ip('-n', h.ns, 'link', 'set', 'dev', 'lo', 'up');
      await ip('-n', h.ns, 'link', 'set', 'dev', h.dev, 'up');
    }
    await waitCarrier(hosts);
  } catch (err) {
    await lan.destroy();
    throw err;
  }
  return lan;
}

/** Destroys every LAN still alive (for afterAll). Never throws. */
export async function destroyAllLans(): Promise<void> {
  await Promise.all([...live].map((l) => l.destroy()));
}
