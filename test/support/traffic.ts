/**
 * Traffic for kernel tests, run inside a namespace: `ip netns exec NS node test/support/traffic.ts CMD ...`.
 *
 *   serve --name NAME --port P            TCP and UDP echo of NAME on P (IPv4 and IPv6)
 *   tcp-request --to HOST:PORT [--timeout-ms T]
 *                                        prints {"ok":true,"reply":NAME} or {"ok":false,"error":CODE}
 *   udp-request --to HOST:PORT [--timeout-ms T] [--sport P]
 *   udp-stream --to HOST:PORT --sport P --interval-ms I --count N
 *                                        sends N datagrams from one source port (one conntrack
 *                                        flow), prints one JSON line per reply {"t":ms,"reply":NAME}
 *
 * Every loop is bounded by a count or a timeout, so a test can never send without end.
 */
import dgram from 'node:dgram';
import net from 'node:net';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`missing --${name}`);
    return fallback;
  }
  return v;
}

function splitHostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`bad HOST:PORT ${s}`);
  return { host: m[1]!, port: Number(m[2]) };
}

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

function serve(): void {
  const name = arg('name');
  const port = Number(arg('port'));
  const tcp = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.end(`${name}\n`);
  });
  tcp.listen({ port, host: '::', ipv6Only: false });
  for (const type of ['udp4', 'udp6'] as const) {
    const udp = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
    udp.on('message', (msg, rinfo) => {
      out({ t: Date.now(), from: `${rinfo.address}:${rinfo.port}`, got: msg.toString() });
      udp.send(name, rinfo.port, rinfo.address);
    });
    udp.on('error', () => {});
    udp.bind(port, type === 'udp4' ? '0.0.0.0' : '::');
  }
  out({ listening: port });
}

function tcpRequest(): void {
  const { host, port } = splitHostPort(arg('to'));
  const timeout = Number(arg('timeout-ms', '2000'));
  const started = Date.now();
  const sock = net.connect({ host, port });
  let data = '';
  const timer = setTimeout(() => {
    out({ ok: false, error: 'ETIMEDOUT', ms: Date.now() - started });
    process.exit(0);
  }, timeout);
  sock.on('data', (d) => {
    data += d.toString();
  });
  sock.on('end', () => {
    clearTimeout(timer);
    out({ ok: true, reply: data.trim(), ms: Date.now() - started });
    process.exit(0);
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    out({ ok: false, error: err.code ?? err.message, ms: Date.now() - started });
    process.exit(0);
  });
}

function udpSocket(host: string): dgram.Socket {
  return dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
}

function udpRequest(): void {
  const { host, port } = splitHostPort(arg('to'));
  const timeout = Number(arg('timeout-ms', '2000'));
  const sport = Number(arg('sport', '0'));
  const sock = udpSocket(host);
  const timer = setTimeout(() => {
    out({ ok: false, error: 'ETIMEDOUT' });
    process.exit(0);
  }, timeout);
  sock.on('message', (msg) => {
    clearTimeout(timer);
    out({ ok: true, reply: msg.toString() });
    process.exit(0);
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    out({ ok: false, error: err.code ?? err.message });
    process.exit(0);
  });
  sock.bind(sport, () => sock.send('hostname', port, host));
}

function udpStream(): void {
  const { host, port } = splitHostPort(arg('to'));
  const sport = Number(arg('sport'));
  const interval = Number(arg('interval-ms', '100'));
  const count = Math.min(Number(arg('count')), 10_000);
  const sock = udpSocket(host);
  let sent = 0;
  sock.on('message', (msg) => out({ t: Date.now(), reply: msg.toString() }));
  // ICMP errors (port unreachable from a REJECT) surface as socket errors; keep sending.
  sock.on('error', (err: NodeJS.ErrnoException) => out({ t: Date.now(), error: err.code ?? err.message }));
  sock.bind(sport, () => {
    const tick = setInterval(() => {
      if (sent >= count) {
        clearInterval(tick);
        setTimeout(() => process.exit(0), interval * 2);
        return;
      }
      sent++;
      sock.send(`hostname ${sent}`, port, host);
    }, interval);
  });
}

const cmd = process.argv[2];
switch (cmd) {
  case 'serve':
    serve();
    break;
  case 'tcp-request':
    tcpRequest();
    break;
  case 'udp-request':
    udpRequest();
    break;
  case 'udp-stream':
    udpStream();
    break;
  default:
    process.stderr.write(`unknown command ${String(cmd)}\n`);
    process.exit(2);
}
