/**
 * The three informers kube-proxy runs, configured as upstream's (cmd/kube-proxy, UPSTREAM-REFERENCE
 * 1.6-m and 3.1):
 *
 * - Services and EndpointSlices in all namespaces, without those labelled
 *   `service.kubernetes.io/service-proxy-name` (another proxy implementation owns them) or
 *   `service.kubernetes.io/headless` (nothing to proxy).
 * - This node's own Node object only (`metadata.name=<node>`).
 *
 * What is NOT filtered here: Services with clusterIP None or empty and Services of type
 * ExternalName are still delivered, because upstream filters them in the service change tracker,
 * not in the informer (its tracker must see them to notice a Service turning into or out of one).
 * Likewise FQDN slices and slices of the other IP family reach the handlers; the endpoint tracker
 * drops them.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.ts';
import { createInformer, type Informer, type InformerHandlers, type InformerOptions } from './informer.ts';
import { createListWatcher, type ListWatcherOptions } from './listwatch.ts';
import {
  type EndpointSlice,
  endpointSliceSchema,
  HEADLESS_LABEL,
  type Node,
  nodeSchema,
  SERVICE_PROXY_NAME_LABEL,
  type Service,
  serviceSchema,
} from './schemas.ts';

/** Upstream's label selector for Services and EndpointSlices. */
export const PROXY_LABEL_SELECTOR = `!${SERVICE_PROXY_NAME_LABEL},!${HEADLESS_LABEL}`;

export const SERVICES_PATH = '/api/v1/services';
export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1/endpointslices';
export const NODES_PATH = '/api/v1/nodes';

/**
 * Client-side watch inactivity limit. The API server sends a bookmark about once a minute on a
 * quiet watch, so two minutes of silence means a dead connection; a watch cut this way resumes
 * from its resourceVersion without a relist, so a false alarm costs one request.
 */
const WATCH_INACTIVITY_TIMEOUT_MS = 120_000;

/** Knobs shared by the factories; all optional. */
export interface InformerFactoryOptions
  extends Pick<
    InformerOptions<unknown>,
    'backoff' | 'delay' | 'watchTimeoutSeconds' | 'pageSize' | 'minHealthyWatchMs'
  > {
  readonly logger?: Logger;
  readonly listWatcher?: ListWatcherOptions;
}

export function serviceInformer(
  kc: KubeConfig,
  handlers: InformerHandlers<Service>,
  opts: InformerFactoryOptions = {},
): Informer<Service> {
  return createInformer<Service>({
    ...common(opts),
    kind: 'Service',
    schema: serviceSchema,
    listWatcher: createListWatcher(kc, SERVICES_PATH, listWatcherOptions(opts)),
    handlers,
    labelSelector: PROXY_LABEL_SELECTOR,
  });
}

export function endpointSliceInformer(
  kc: KubeConfig,
  handlers: InformerHandlers<EndpointSlice>,
  opts: InformerFactoryOptions = {},
): Informer<EndpointSlice> {
  return createInformer<EndpointSlice>({
    ...common(opts),
    kind: 'EndpointSlice',
    schema: endpointSliceSchema,
    listWatcher: createListWatcher(kc, ENDPOINT_SLICES_PATH, listWatcherOptions(opts)),
    handlers,
    labelSelector: PROXY_LABEL_SELECTOR,
  });
}

export function nodeInformer(
  kc: KubeConfig,
  nodeName: string,
  handlers: InformerHandlers<Node>,
  opts: InformerFactoryOptions = {},
): Informer<Node> {
  return createInformer<Node>({
    ...common(opts),
    kind: 'Node',
    schema: nodeSchema,
    listWatcher: createListWatcher(kc, NODES_PATH, listWatcherOptions(opts)),
    handlers,
    fieldSelector: `metadata.name=${nodeName}`,
  });
}

function common(opts: InformerFactoryOptions) {
  const { listWatcher: _lw, ...rest } = opts;
  return rest;
}

function listWatcherOptions(opts: InformerFactoryOptions): ListWatcherOptions {
  return { watchInactivityTimeoutMs: WATCH_INACTIVITY_TIMEOUT_MS, ...opts.listWatcher };
}
