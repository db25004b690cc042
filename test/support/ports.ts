/** Ports for tests. */
import { createServer, type AddressInfo } from 'node:net';

/** A loopback port that was free a moment ago and now has no listener: connecting is refused. */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
