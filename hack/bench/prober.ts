/**
 * The latency probe, run inside the client namespace: `node hack/bench/prober.ts`. Each stdin
 * line `NAME HOST:PORT TIMEOUT_MS` starts a loop of fresh TCP connections to HOST:PORT (a Service
 * IP) until one is answered by the server named NAME (test/support/traffic.ts `serve`), and
 * prints one JSON line: {"ok":true,"tries":N,"connectMs":M} or {"ok":false,"last":REPLY|ERROR}.
 *
 * Why packets and not `iptables -S`: a new connection takes the DNAT rules the kernel holds at
 * that moment (a new source port is a new conntrack entry), so the answer is exactly "the rule
 * is in", without reading the table (seconds at 10,000 Services with legacy iptables, which also
 * holds the xtables lock while it reads and so would delay the restore being measured).
 */
import net from 'node:net';
import { createInterface } from 'node:readline';

/** `NAME HOST:PORT TIMEOUT_MS` → its parts, or undefined. */
export function parseProbeCommand(
  line: string,
): { name: string; host: string; port: number; timeoutMs: number } | undefined {
  const m = /^(\S+) (\d{1,3}(?:\.\d{1,3}){3}):(\d+) (\d+)$/.exec(line.trim());
  if (!m) return undefined;
  return { name: m[1]!, host: m[2]!, port: Number(m[3]), timeoutMs: Number(m[4]) };
}

/** One connection: the server's first line, or an error code. */
function ask(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let data = '';
    const done = (v: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    sock.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.includes('\n')) done(data.trim());
    });
    sock.on('end', () => done(data.trim()));
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function probe(cmd: { name: string; host: string; port: number; timeoutMs: number }) {
  const start = performance.now();
  let tries = 0;
  let last = '';
  while (performance.now() - start < cmd.timeoutMs) {
    tries++;
    const t0 = performance.now();
    last = await ask(cmd.host, cmd.port, 250);
    const connectMs = performance.now() - t0;
    if (last === cmd.name) return { ok: true, tries, connectMs: Math.round(connectMs * 10) / 10 };
    await sleep(5);
  }
  return { ok: false, tries, last };
}

if (import.meta.main) {
  const rl = createInterface({ input: process.stdin });
  // One probe at a time, in order: the caller waits for each answer.
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      const cmd = parseProbeCommand(line);
      const r = cmd ? await probe(cmd) : { ok: false, last: `bad command ${JSON.stringify(line)}` };
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
  });
}
