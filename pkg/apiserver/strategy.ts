/**
 * Per-type create/update rules (upstream's "rest strategies"): defaulting and validation before
 * an object is stored, and the release of what it held once it is gone. The store calls these;
 * it handles everything all types share (metadata, versions, conflicts, events).
 */
import { invalid, type StatusCause } from './errors.ts';
import { type KubeObject, RESOURCES, type ResourceName } from './resources.ts';
import { createServiceStrategy, type ServiceAllocators } from './services.ts';
import {
  defaultEndpointSlice,
  type NameRule,
  validateEndpointSlice,
  validateObjectMeta,
} from './validation.ts';

export interface Strategy {
  /** Defaults and validates a new object (throws ApiError); may take allocations. */
  prepareCreate(obj: KubeObject): KubeObject;
  /** Defaults and validates an update of `old` (throws ApiError); may take and release allocations. */
  prepareUpdate(obj: KubeObject, old: KubeObject): KubeObject;
  /** Gives back what a deleted object held. */
  release(obj: KubeObject): void;
  /** Whether status is owned by the /status subresource (a main update keeps the old status). */
  readonly statusSubresource: boolean;
}

function simpleStrategy(
  resource: ResourceName,
  rule: NameRule,
  validate: (obj: KubeObject) => StatusCause[],
  defaults: (obj: KubeObject) => KubeObject = (o) => o,
  statusSubresource = true,
): Strategy {
  const check = (input: KubeObject): KubeObject => {
    const obj = defaults(input);
    const causes = [...validateObjectMeta(obj, rule), ...validate(obj)];
    if (causes.length > 0) {
      const info = RESOURCES[resource];
      throw invalid({ group: info.group, resource, kind: info.kind, name: obj.metadata.name ?? '' }, causes);
    }
    return obj;
  };
  return {
    prepareCreate: check,
    prepareUpdate: check,
    release: () => {},
    statusSubresource,
  };
}

export type Strategies = Readonly<Record<ResourceName, Strategy>>;

export function createStrategies(allocators: ServiceAllocators): Strategies {
  const services = createServiceStrategy({ allocators });
  return {
    namespaces: simpleStrategy(
      'namespaces',
      'dns1123Label',
      () => [],
      (o) => ({
        ...o,
        spec: { finalizers: ['kubernetes'], ...(o.spec as object | undefined) },
        status: { phase: 'Active' },
      }),
    ),
    // Nodes may carry status on create: the sandbox registers its node with addresses.
    nodes: simpleStrategy('nodes', 'dns1123Subdomain', () => []),
    // Services reset status on create (in prepareCreate), as upstream's PrepareForCreate.
    services: { ...services, statusSubresource: true },
    endpointslices: simpleStrategy(
      'endpointslices',
      'dns1123Subdomain',
      validateEndpointSlice,
      defaultEndpointSlice,
      false,
    ),
  };
}
