/** Shared fixtures for the informer tests: raw objects, an event recorder, a fast backoff. */
import type { InformerHandlers } from '../../../pkg/k8s/informer.ts';
import type { RawObject } from '../../support/fake-apiserver.ts';

interface Meta {
  metadata: { name: string; namespace?: string | undefined; resourceVersion?: string | undefined };
}

export function service(
  namespace: string,
  name: string,
  clusterIP = '10.0.0.1',
  over: { labels?: Record<string, string>; ports?: unknown[]; type?: string } = {},
): RawObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace, name, ...(over.labels ? { labels: over.labels } : {}) },
    spec: {
      type: over.type ?? 'ClusterIP',
      clusterIP,
      ports: over.ports ?? [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

export function slice(namespace: string, name: string, service: string, addresses: string[]): RawObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export function node(name: string, labels: Record<string, string> = {}): RawObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: { podCIDR: '10.244.0.0/24' } };
}

function key(o: Meta): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

/**
 * Records handler calls as short lines; `describe` picks what an event shows of an object
 * (default: its resourceVersion).
 */
export function recorder<T extends Meta>(
  describe: (o: T) => string = (o) => `@${o.metadata.resourceVersion}`,
) {
  const events: string[] = [];
  const invalid: Array<{ kind: string; name: string; reason: string }> = [];
  const handlers: InformerHandlers<T> = {
    onAdd: (o) => events.push(`add ${key(o)} ${describe(o)}`),
    onUpdate: (a, b) => events.push(`update ${key(b)} ${describe(a)} -> ${describe(b)}`),
    onDelete: (o) => events.push(`delete ${key(o)} ${describe(o)}`),
    onSynced: () => events.push('synced'),
    onInvalid: (kind, name, reason) => invalid.push({ kind, name, reason }),
  };
  return { events, invalid, handlers };
}

/** A backoff that records the requested delays and waits only a few milliseconds. */
export function fastDelay() {
  const delays: number[] = [];
  const delay = async (ms: number, signal: AbortSignal): Promise<void> => {
    delays.push(ms);
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  };
  return { delays, delay };
}
