/** Shared helpers for the development API server tests: a started server and HTTP/watch clients. */
import { type ApiServer, type ApiServerOptions, createApiServer } from '../../../pkg/apiserver/server.ts';

export interface Started {
  readonly server: ApiServer;
  readonly url: string;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
}

export interface Reply {
  readonly status: number;
  readonly contentType: string;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are read field by field
  readonly body: any;
}

export async function startServer(opts: ApiServerOptions = {}): Promise<Started> {
  const server = createApiServer(opts);
  const { url } = await server.start();
  return {
    server,
    url,
    async request(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        (init.headers as Record<string, string>)['Content-Type'] ??= 'application/json';
      }
      const res = await fetch(url + path, init);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: parsed };
    },
  };
}

export interface WatchEvent {
  readonly type: string;
  // biome-ignore lint/suspicious/noExplicitAny: event objects are read field by field
  readonly object: any;
}

export interface WatchStream {
  readonly status: number;
  /** The next event; rejects after `timeoutMs` without one, resolves undefined at end of stream. */
  next(timeoutMs?: number): Promise<WatchEvent | undefined>;
  /** Collects `n` events. */
  take(n: number, timeoutMs?: number): Promise<WatchEvent[]>;
  /** Resolves once the server ends the stream (true) or `timeoutMs` passes (false). */
  ended(timeoutMs?: number): Promise<boolean>;
  close(): void;
}

export async function openWatch(url: string, headers: Record<string, string> = {}): Promise<WatchStream> {
  const ctrl = new AbortController();
  const res = await fetch(url, { signal: ctrl.signal, headers });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let done = false;
  const queue: WatchEvent[] = [];
  const waiters: (() => void)[] = [];
  const pump = async () => {
    try {
      for (;;) {
        const { value, done: d } = await reader.read();
        if (d) break;
        buf += decoder.decode(value, { stream: true });
        let nl = buf.indexOf('\n');
        while (nl !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) queue.push(JSON.parse(line) as WatchEvent);
          nl = buf.indexOf('\n');
        }
        for (const w of waiters.splice(0)) w();
      }
    } catch {
      // aborted or reset: the stream is over
    }
    done = true;
    for (const w of waiters.splice(0)) w();
  };
  void pump();
  const waitFor = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      waiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  const stream: WatchStream = {
    status: res.status,
    async next(timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0 && !done) {
        const left = deadline - Date.now();
        if (left <= 0 || !(await waitFor(left))) {
          if (queue.length === 0 && !done) throw new Error(`no watch event within ${timeoutMs} ms`);
        }
      }
      return queue.shift();
    },
    async take(n, timeoutMs = 3000) {
      const out: WatchEvent[] = [];
      for (let i = 0; i < n; i++) {
        const e = await stream.next(timeoutMs);
        if (!e) throw new Error(`stream ended after ${out.length} of ${n} events`);
        out.push(e);
      }
      return out;
    },
    async ended(timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (!done) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await waitFor(left);
      }
      return true;
    },
    close() {
      ctrl.abort();
    },
  };
  return stream;
}

export function svc(name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { ports: [{ port: 80 }], ...spec },
  };
}

export function slice(name: string, service: string, addresses: string[]) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: '', port: 8080, protocol: 'TCP' }],
  };
}
