/**
 * Setup of the kernel project (vitest.config.ts). The legacy backend serialises every iptables
 * process on the machine through one lock file, /run/xtables.lock, whatever its network
 * namespace. Our nodes are namespaces on one machine, so anything else using iptables on it (a
 * benchmark, another test run, the host's own firewall tooling) would hold our restores for
 * seconds ("Another app is currently holding the xtables lock"), which is not what these tests
 * measure: a real node's lock is its own. iptables reads the lock path from XTABLES_LOCKFILE, and
 * every process a test starts (proxies, iptables-save, iptables-restore) inherits it.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!process.env.XTABLES_LOCKFILE) {
  const file = join(tmpdir(), `kpt-kernel-${process.pid}.xtables.lock`);
  process.env.XTABLES_LOCKFILE = file;
  process.once('exit', () => rmSync(file, { force: true }));
}
