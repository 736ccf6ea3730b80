/**
 * The API boundary. Every Service, EndpointSlice and Node that reaches the proxy is parsed here
 * first; an object that fails is logged and skipped by the informer, so nothing past this module
 * ever sees a malformed address, port or protocol. Only the fields kube-proxy uses are kept
 * (zod strips the rest), and the types below are what the rest of the code works with.
 */
import { z } from 'zod';
import { parseCIDR, parseIP } from '../net/ip.ts';

const ipAddress = z.string().refine((s) => parseIP(s) !== undefined, { message: 'not a valid IP address' });
const cidr = z.string().refine((s) => parseCIDR(s) !== undefined, { message: 'not a valid CIDR' });
const portNumber = z.number().int().min(1).max(65535);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);
/** Go's omitempty and JSON null both mean "absent" in the API. */
const opt = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? undefined);
const stringMap = opt(z.record(z.string(), z.string()));

export const objectMetaSchema = z.object({
  name: z.string().min(1),
  namespace: opt(z.string()),
  uid: opt(z.string()),
  resourceVersion: opt(z.string()),
  labels: stringMap,
  annotations: stringMap,
  deletionTimestamp: opt(z.string()),
});

const namespacedMetaSchema = objectMetaSchema.extend({ namespace: z.string().min(1) });

export const servicePortSchema = z.object({
  name: opt(z.string()),
  protocol: opt(protocol).transform((p) => p ?? 'TCP'),
  port: portNumber,
  nodePort: opt(z.number().int().min(0).max(65535)),
});

/** ClusterIP is an IP, or "None" / empty for headless services (which the proxy ignores). */
const clusterIPValue = z.union([z.literal('None'), z.literal(''), ipAddress]);

export const serviceSchema = z
  .object({
    metadata: namespacedMetaSchema,
    spec: z.object({
      type: opt(z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'])).transform(
        (t) => t ?? 'ClusterIP',
      ),
      clusterIP: opt(clusterIPValue),
      clusterIPs: opt(z.array(clusterIPValue)),
      ports: opt(z.array(servicePortSchema)).transform((p) => p ?? []),
      externalIPs: opt(z.array(ipAddress)).transform((p) => p ?? []),
      loadBalancerSourceRanges: opt(z.array(cidr)).transform((p) => p ?? []),
      sessionAffinity: opt(z.enum(['None', 'ClientIP'])).transform((s) => s ?? 'None'),
      sessionAffinityConfig: opt(
        z.object({
          clientIP: opt(z.object({ timeoutSeconds: opt(z.number().int().min(1).max(86400)) })),
        }),
      ),
      externalTrafficPolicy: opt(z.enum(['Cluster', 'Local', 'Global'])),
      internalTrafficPolicy: opt(z.enum(['Cluster', 'Local'])),
      healthCheckNodePort: opt(z.number().int().min(0).max(65535)),
      trafficDistribution: opt(z.string()),
    }),
    status: opt(
      z.object({
        loadBalancer: opt(
          z.object({
            ingress: opt(
              z.array(
                z.object({
                  ip: opt(z.union([z.literal(''), ipAddress])),
                  hostname: opt(z.string()),
                  ipMode: opt(z.enum(['VIP', 'Proxy'])),
                }),
              ),
            ),
          }),
        ),
      }),
    ),
  })
  .superRefine((svc, ctx) => {
    // ExternalName and headless Services are ignored, so only ports of proxied Services must be
    // unique: two entries with one name would collide in the service-port map.
    const seen = new Set<string>();
    svc.spec.ports.forEach((p, i) => {
      const key = p.name ?? '';
      if (seen.has(key)) {
        ctx.addIssue({
          code: 'custom',
          path: ['spec', 'ports', i, 'name'],
          message: `duplicate port name "${key}"`,
        });
      }
      seen.add(key);
    });
  });

export const endpointSchema = z.object({
  addresses: z.array(z.string()).min(1),
  conditions: opt(
    z.object({
      ready: opt(z.boolean()),
      serving: opt(z.boolean()),
      terminating: opt(z.boolean()),
    }),
  ).transform((c) => c ?? { ready: undefined, serving: undefined, terminating: undefined }),
  nodeName: opt(z.string()),
  zone: opt(z.string()),
  hints: opt(
    z.object({
      forZones: opt(z.array(z.object({ name: z.string() }))),
      forNodes: opt(z.array(z.object({ name: z.string() }))),
    }),
  ),
});

export const endpointPortSchema = z.object({
  name: opt(z.string()),
  protocol: opt(protocol).transform((p) => p ?? 'TCP'),
  port: opt(z.number().int().min(0).max(65535)),
});

export const endpointSliceSchema = z
  .object({
    metadata: namespacedMetaSchema,
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    endpoints: opt(z.array(endpointSchema)).transform((e) => e ?? []),
    ports: opt(z.array(endpointPortSchema)).transform((p) => p ?? []),
  })
  .superRefine((slice, ctx) => {
    if (slice.addressType === 'FQDN') return;
    slice.endpoints.forEach((ep, i) => {
      ep.addresses.forEach((a, j) => {
        const ip = parseIP(a);
        if (!ip || ip.family !== slice.addressType) {
          ctx.addIssue({
            code: 'custom',
            path: ['endpoints', i, 'addresses', j],
            message: `"${a}" is not a valid ${slice.addressType} address`,
          });
        }
      });
    });
  });

export const nodeSchema = z.object({
  metadata: objectMetaSchema,
  spec: opt(
    z.object({
      podCIDR: opt(cidr),
      podCIDRs: opt(z.array(cidr)),
      // Health eligibility (pkg/health): a node tainted ToBeDeletedByClusterAutoscaler answers
      // 503 on /healthz so that load balancers drain it before it goes.
      taints: opt(z.array(z.object({ key: z.string(), value: opt(z.string()), effect: opt(z.string()) }))),
    }),
  ).transform((s) => s ?? { podCIDR: undefined, podCIDRs: undefined, taints: undefined }),
  status: opt(
    z.object({
      addresses: opt(z.array(z.object({ type: z.string(), address: z.string() }))),
    }),
  ).transform((s) => s ?? { addresses: undefined }),
});

export type Service = z.output<typeof serviceSchema>;
export type ServicePortSpec = z.output<typeof servicePortSchema>;
export type EndpointSlice = z.output<typeof endpointSliceSchema>;
export type EndpointSliceEndpoint = z.output<typeof endpointSchema>;
export type EndpointSlicePort = z.output<typeof endpointPortSchema>;
export type Node = z.output<typeof nodeSchema>;

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Objects with this label belong to another proxy implementation. */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
/** Headless Services' slices carry this label. */
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';
export const LAST_CHANGE_TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';
export const TOPOLOGY_ZONE_LABEL = 'topology.kubernetes.io/zone';

/** One line per issue, with dotted paths: what an operator reads in the log. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(object)'}: ${i.message}`)
    .join('; ');
}
