/**
 * Runs applyConntrackSysctls with the real /proc/sys, for sysctl.kernel.test.ts, which starts it
 * with `ip netns exec NS node apply-sysctls.script.ts CONFIG_JSON NUM_CPU PARENT_NETNS`, where
 * PARENT_NETNS is `readlink /proc/self/ns/net` of the test process (the machine's own namespace).
 * It refuses to run in that namespace, and it never writes the nf_conntrack module's hashsize (a
 * global value): that write is only recorded.
 *
 * Prints one JSON line: { outcomes, hashsizeWrites }.
 */
import { readlinkSync } from 'node:fs';
import { silentLogger } from '../../../pkg/log/logger.ts';
import {
  applyConntrackSysctls,
  type ConntrackSysctlConfig,
  moduleHashsize,
} from '../../../pkg/sysctl/conntrack.ts';

const parentNetns = process.argv[4] ?? '';
if (parentNetns === '' || readlinkSync('/proc/self/ns/net') === parentNetns) {
  process.stderr.write('refusing to run outside a test network namespace\n');
  process.exit(3);
}

const cfg = JSON.parse(process.argv[2] ?? '') as ConntrackSysctlConfig;
const numCPU = Number(process.argv[3]);
const hashsizeWrites: number[] = [];
const outcomes = await applyConntrackSysctls(cfg, {
  numCPU,
  logger: silentLogger(),
  hashsize: {
    read: moduleHashsize.read,
    write: async (v) => {
      hashsizeWrites.push(v);
    },
  },
});
process.stdout.write(`${JSON.stringify({ outcomes, hashsizeWrites })}\n`);
