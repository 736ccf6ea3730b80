/**
 * Services: defaulting, validation and the allocation of cluster IPs, node ports and health-check
 * node ports, the parts of upstream's service REST storage (pkg/registry/core/service) that make
 * a created Service look like one from a real cluster. kube-proxy reads exactly these fields.
 *
 * Allocation is transactional: every value taken while preparing an object is given back if a
 * later step fails, and values an update stops using are released only once it has succeeded.
 */
import { type IPFamily, parseIP } from '../net/ip.ts';
import { AllocationError, type IPAllocator, type PortAllocator } from './allocator.ts';
import { type ErrorSubject, fieldError, invalid, type StatusCause } from './errors.ts';
import { type KubeObject, RESOURCES } from './resources.ts';
import { ianaServiceNameProblem, isPortNumber, PROTOCOLS, validateObjectMeta } from './validation.ts';

export interface ServiceAllocators {
  /** One allocator per configured service CIDR; the first one's family is the cluster's primary. */
  readonly ips: readonly IPAllocator[];
  readonly nodePorts: PortAllocator;
}

type Rec = Record<string, unknown>;
const isRecord = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const POLICIES = ['SingleStack', 'PreferDualStack', 'RequireDualStack'] as const;
const FAMILIES = ['IPv4', 'IPv6'] as const;
const AFFINITIES = ['None', 'ClientIP'] as const;
const TRAFFIC_POLICIES = ['Cluster', 'Local'] as const;

const subject = (obj: KubeObject) => ({
  group: '',
  resource: 'services',
  kind: RESOURCES.services.kind,
  name: obj.metadata.name ?? '',
});

const strArray = (v: unknown): string[] | undefined =>
  Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;

const usesNodePorts = (type: string) => type === 'NodePort' || type === 'LoadBalancer';

/** Field defaults that need no cluster state (upstream's SetDefaults_Service). */
function applyStaticDefaults(spec: Rec): void {
  spec.type ??= 'ClusterIP';
  const type = spec.type;
  spec.sessionAffinity ??= 'None';
  if (spec.sessionAffinity === 'ClientIP') {
    const cfg = isRecord(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : {};
    const client = isRecord(cfg.clientIP) ? cfg.clientIP : {};
    client.timeoutSeconds ??= 10800;
    spec.sessionAffinityConfig = { ...cfg, clientIP: client };
  }
  if (type !== 'ExternalName') spec.internalTrafficPolicy ??= 'Cluster';
  if (usesNodePorts(String(type))) spec.externalTrafficPolicy ??= 'Cluster';
  if (type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
  if (Array.isArray(spec.ports)) {
    spec.ports = spec.ports.map((p: unknown) => {
      if (!isRecord(p)) return p;
      const out: Rec = { ...p };
      out.protocol ??= 'TCP';
      if (
        out.targetPort === undefined ||
        out.targetPort === null ||
        out.targetPort === 0 ||
        out.targetPort === ''
      ) {
        out.targetPort = out.port;
      }
      return out;
    });
  }
  // clusterIP and clusterIPs[0] are the same value; fill whichever the user left out.
  const ips = strArray(spec.clusterIPs);
  if ((spec.clusterIP === undefined || spec.clusterIP === '') && ips && ips.length > 0)
    spec.clusterIP = ips[0];
  if (typeof spec.clusterIP === 'string' && spec.clusterIP !== '' && (!ips || ips.length === 0)) {
    spec.clusterIPs = [spec.clusterIP];
  }
}

/**
 * When an update changes the type, fields that only the old type used and that the client left
 * as they were are dropped, so a NodePort Service read back and PUT as ClusterIP validates
 * (upstream's dropTypeDependentFields).
 */
function dropTypeDependentFields(spec: Rec, oldSpec: Rec): void {
  const type = String(spec.type ?? 'ClusterIP');
  const external = usesNodePorts(type) || (strArray(spec.externalIPs) ?? []).length > 0;
  if (!external && spec.externalTrafficPolicy === oldSpec.externalTrafficPolicy)
    delete spec.externalTrafficPolicy;
  if (type !== 'LoadBalancer') {
    if (spec.allocateLoadBalancerNodePorts === oldSpec.allocateLoadBalancerNodePorts)
      delete spec.allocateLoadBalancerNodePorts;
    if (spec.healthCheckNodePort === oldSpec.healthCheckNodePort) delete spec.healthCheckNodePort;
  }
  if (!usesNodePorts(type) && Array.isArray(spec.ports)) {
    spec.ports = spec.ports.map((p: unknown) => {
      if (!isRecord(p)) return p;
      const { nodePort: _np, ...rest } = p;
      return rest;
    });
  }
}

/** Shape checks that need no cluster state. */
function validateSpec(spec: Rec, causes: StatusCause[], nodePortRange: readonly [number, number]): void {
  const type = spec.type as string;
  if (!TYPES.includes(type as 'ClusterIP')) causes.push(fieldError.notSupported('spec.type', type, TYPES));
  if (!AFFINITIES.includes(spec.sessionAffinity as 'None')) {
    causes.push(fieldError.notSupported('spec.sessionAffinity', spec.sessionAffinity, AFFINITIES));
  }
  const timeout =
    isRecord(spec.sessionAffinityConfig) && isRecord(spec.sessionAffinityConfig.clientIP)
      ? spec.sessionAffinityConfig.clientIP.timeoutSeconds
      : undefined;
  if (
    timeout !== undefined &&
    (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 86400)
  ) {
    causes.push(
      fieldError.invalid(
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
        timeout,
        'must be greater than 0 and less than 86400',
      ),
    );
  }
  for (const f of ['internalTrafficPolicy', 'externalTrafficPolicy'] as const) {
    if (spec[f] !== undefined && spec[f] !== null && !TRAFFIC_POLICIES.includes(spec[f] as 'Cluster')) {
      causes.push(fieldError.notSupported(`spec.${f}`, spec[f], TRAFFIC_POLICIES));
    }
  }
  if (
    spec.externalTrafficPolicy !== undefined &&
    spec.externalTrafficPolicy !== null &&
    !usesNodePorts(type)
  ) {
    const ext = strArray(spec.externalIPs) ?? [];
    if (ext.length === 0) {
      causes.push(
        fieldError.invalid(
          'spec.externalTrafficPolicy',
          spec.externalTrafficPolicy,
          'may only be set for externally-accessible services',
        ),
      );
    }
  }
  const clusterIP = spec.clusterIP;
  if (clusterIP !== undefined && clusterIP !== null && clusterIP !== '' && clusterIP !== 'None') {
    if (typeof clusterIP !== 'string' || !parseIP(clusterIP)) {
      causes.push(
        fieldError.invalid('spec.clusterIPs[0]', clusterIP, "must be empty, 'None', or a valid IP address"),
      );
    }
  }
  const ips = strArray(spec.clusterIPs) ?? [];
  if (spec.clusterIPs !== undefined && spec.clusterIPs !== null && !strArray(spec.clusterIPs)) {
    causes.push(fieldError.invalid('spec.clusterIPs', spec.clusterIPs, 'must be a list of strings'));
  }
  if (ips.length > 0 && clusterIP !== ips[0]) {
    causes.push(fieldError.invalid('spec.clusterIPs', ips, 'must match `spec.clusterIP` in the first entry'));
  }
  if (ips.length > 2) causes.push(fieldError.invalid('spec.clusterIPs', ips, 'may only hold up to 2 values'));
  ips.slice(1).forEach((ip, i) => {
    if (!parseIP(ip))
      causes.push(fieldError.invalid(`spec.clusterIPs[${i + 1}]`, ip, 'must be a valid IP address'));
  });
  if (type === 'ExternalName') {
    if (typeof spec.externalName !== 'string' || spec.externalName === '')
      causes.push(fieldError.required('spec.externalName'));
    if (clusterIP)
      causes.push(fieldError.forbidden('spec.clusterIP', 'may not be set for ExternalName services'));
  }
  if (
    spec.ipFamilyPolicy !== undefined &&
    spec.ipFamilyPolicy !== null &&
    !POLICIES.includes(spec.ipFamilyPolicy as 'SingleStack')
  ) {
    causes.push(fieldError.notSupported('spec.ipFamilyPolicy', spec.ipFamilyPolicy, POLICIES));
  }
  const fams = spec.ipFamilies;
  if (fams !== undefined && fams !== null) {
    const list = strArray(fams);
    if (!list) causes.push(fieldError.invalid('spec.ipFamilies', fams, 'must be a list of strings'));
    else {
      list.forEach((f, i) => {
        if (!FAMILIES.includes(f as 'IPv4'))
          causes.push(fieldError.notSupported(`spec.ipFamilies[${i}]`, f, FAMILIES));
        if (list.indexOf(f) !== i) causes.push(fieldError.duplicate(`spec.ipFamilies[${i}]`, f));
      });
      if (list.length > 2)
        causes.push(fieldError.invalid('spec.ipFamilies', list, 'may only hold up to 2 values'));
    }
  }
  validatePorts(spec, type, causes, nodePortRange);
  const hc = spec.healthCheckNodePort;
  if (hc !== undefined && hc !== null && hc !== 0) {
    if (!(type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local')) {
      causes.push(
        fieldError.invalid(
          'spec.healthCheckNodePort',
          hc,
          "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ),
      );
    } else if (!isPortNumber(hc)) {
      causes.push(
        fieldError.invalid('spec.healthCheckNodePort', hc, 'must be between 1 and 65535, inclusive'),
      );
    }
  }
}

function validatePorts(
  spec: Rec,
  type: string,
  causes: StatusCause[],
  nodePortRange: readonly [number, number],
): void {
  const ports = spec.ports;
  if (ports !== undefined && ports !== null && !Array.isArray(ports)) {
    causes.push(fieldError.invalid('spec.ports', ports, 'must be a list'));
    return;
  }
  const list = (ports ?? []) as unknown[];
  if (list.length === 0 && type !== 'ExternalName' && spec.clusterIP !== 'None')
    causes.push(fieldError.required('spec.ports'));
  const names = new Set<string>();
  const portProto = new Set<string>();
  list.forEach((p, i) => {
    const at = `spec.ports[${i}]`;
    if (!isRecord(p)) {
      causes.push(fieldError.invalid(at, p, 'must be an object'));
      return;
    }
    const name = p.name ?? '';
    if (typeof name !== 'string') causes.push(fieldError.invalid(`${at}.name`, name, 'must be a string'));
    else if (list.length > 1 && name === '') causes.push(fieldError.required(`${at}.name`));
    else if (name !== '') {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) {
        causes.push(
          fieldError.invalid(
            `${at}.name`,
            name,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
          ),
        );
      }
      if (names.has(name)) causes.push(fieldError.duplicate(`${at}.name`, name));
      names.add(name);
    }
    if (!isPortNumber(p.port))
      causes.push(fieldError.invalid(`${at}.port`, p.port, 'must be between 1 and 65535, inclusive'));
    if (!PROTOCOLS.includes(p.protocol as 'TCP'))
      causes.push(fieldError.notSupported(`${at}.protocol`, p.protocol, PROTOCOLS));
    const key = `${String(p.port)}/${String(p.protocol)}`;
    if (portProto.has(key)) causes.push(fieldError.duplicate(at, { port: p.port, protocol: p.protocol }));
    portProto.add(key);
    const tp = p.targetPort;
    if (typeof tp === 'string') {
      const problem = ianaServiceNameProblem(tp);
      if (problem) causes.push(fieldError.invalid(`${at}.targetPort`, tp, problem));
    } else if (!isPortNumber(tp)) {
      causes.push(fieldError.invalid(`${at}.targetPort`, tp, 'must be between 1 and 65535, inclusive'));
    }
    const np = p.nodePort;
    if (np !== undefined && np !== null && np !== 0) {
      if (!usesNodePorts(type)) {
        causes.push(fieldError.forbidden(`${at}.nodePort`, `may not be used when \`type\` is '${type}'`));
      } else if (
        typeof np !== 'number' ||
        !Number.isInteger(np) ||
        np < nodePortRange[0] ||
        np > nodePortRange[1]
      ) {
        causes.push(
          fieldError.invalid(
            `${at}.nodePort`,
            np,
            `provided port is not in the valid range. The range of valid ports is ${nodePortRange[0]}-${nodePortRange[1]}`,
          ),
        );
      }
    }
  });
}

/** Records what a preparation took, so that a failure can give it all back. */
interface Ledger {
  readonly undo: (() => void)[];
}

function rollback(l: Ledger): void {
  for (const u of l.undo.reverse()) u();
}

function allocError(field: string, value: unknown, e: unknown): StatusCause {
  if (e instanceof AllocationError) {
    const what = field.includes('clusterIP')
      ? `failed to allocate IP ${String(value)}: ${e.message}`
      : e.message;
    return fieldError.invalid(field, value, what);
  }
  throw e;
}

/**
 * Resolves ipFamilyPolicy and ipFamilies against the cluster's families (upstream's
 * initIPFamilyFields, simplified: no dual-stack upgrade or downgrade on update).
 */
function resolveFamilies(spec: Rec, clusterFamilies: readonly IPFamily[], causes: StatusCause[]): void {
  const given = strArray(spec.ipFamilies) ?? [];
  const ips = (strArray(spec.clusterIPs) ?? []).filter((ip) => ip !== 'None' && ip !== '');
  const ipFamilies = ips.map((ip) => parseIP(ip)?.family).filter((f): f is IPFamily => f !== undefined);
  ipFamilies.forEach((f, i) => {
    if (given[i] !== undefined && given[i] !== f) {
      causes.push(
        fieldError.invalid(
          `spec.ipFamilies[${i}]`,
          given[i],
          `must match the family of spec.clusterIPs[${i}]`,
        ),
      );
    }
  });
  if (ipFamilies.length === 2 && ipFamilies[0] === ipFamilies[1]) {
    causes.push(
      fieldError.invalid('spec.clusterIPs', ips, 'may specify no more than one IP for each IP family'),
    );
  }
  const requested = (given.length >= ipFamilies.length ? given : ipFamilies) as IPFamily[];
  let policy = spec.ipFamilyPolicy as string | undefined;
  if (policy === undefined || policy === null)
    policy = requested.length === 2 ? 'RequireDualStack' : 'SingleStack';
  if (policy === 'SingleStack' && requested.length === 2) {
    causes.push(
      fieldError.invalid(
        'spec.ipFamilyPolicy',
        policy,
        'must be RequireDualStack or PreferDualStack when multiple ipFamilies are specified',
      ),
    );
  }
  requested.forEach((f, i) => {
    if (!clusterFamilies.includes(f)) {
      causes.push(fieldError.invalid(`spec.ipFamilies[${i}]`, f, 'not configured on this cluster'));
    }
  });
  const dualStackCluster = clusterFamilies.length === 2;
  if (policy === 'RequireDualStack' && !dualStackCluster) {
    causes.push(
      fieldError.invalid(
        'spec.ipFamilyPolicy',
        policy,
        'this cluster is not configured for dual-stack services',
      ),
    );
  }
  const first = requested[0] ?? clusterFamilies[0]!;
  let families: IPFamily[] = [first];
  if (policy !== 'SingleStack' && dualStackCluster) {
    families = [first, requested[1] ?? (first === 'IPv4' ? 'IPv6' : 'IPv4')];
  }
  spec.ipFamilyPolicy = policy;
  spec.ipFamilies = families;
}

interface Allocated {
  readonly ips: readonly string[];
  readonly nodePorts: readonly number[];
  readonly healthCheckNodePort: number | undefined;
}

function allocatedOf(obj: KubeObject | undefined): Allocated {
  const spec = isRecord(obj?.spec) ? obj.spec : {};
  const ips = (strArray(spec.clusterIPs) ?? []).filter((ip) => ip !== 'None' && ip !== '');
  const nodePorts = Array.isArray(spec.ports)
    ? spec.ports
        .map((p: unknown) =>
          isRecord(p) && typeof p.nodePort === 'number' && p.nodePort > 0 ? p.nodePort : 0,
        )
        .filter((n) => n > 0)
    : [];
  const hc =
    typeof spec.healthCheckNodePort === 'number' && spec.healthCheckNodePort > 0
      ? spec.healthCheckNodePort
      : undefined;
  return { ips, nodePorts: [...new Set(nodePorts)], healthCheckNodePort: hc };
}

export interface ServiceStrategyOptions {
  readonly allocators: ServiceAllocators;
}

export interface ServiceStrategy {
  prepareCreate(obj: KubeObject): KubeObject;
  prepareUpdate(obj: KubeObject, old: KubeObject): KubeObject;
  /** Gives back what a stored Service held; called once it has left the store. */
  release(obj: KubeObject): void;
  /** Re-registers the allocations of an object that is already valid (for restoring state). */
  reserve(obj: KubeObject): void;
}

export function createServiceStrategy(opts: ServiceStrategyOptions): ServiceStrategy {
  const { ips: ipAllocs, nodePorts } = opts.allocators;
  const clusterFamilies = ipAllocs.map((a) => a.family);
  const allocFor = (f: IPFamily) => ipAllocs.find((a) => a.family === f);

  /** Defaults and allocates; `old` holds the values an update may keep. */
  function prepare(input: KubeObject, old: KubeObject | undefined): KubeObject {
    const obj = structuredClone(input);
    if (!isRecord(obj.spec)) obj.spec = {};
    const spec = obj.spec as Rec;
    const oldSpec = isRecord(old?.spec) ? old.spec : undefined;
    if (oldSpec && oldSpec.type !== spec.type) dropTypeDependentFields(spec, oldSpec);
    applyStaticDefaults(spec);
    const causes = validateObjectMeta(obj, 'dns1035Label');
    validateSpec(spec, causes, nodePorts.range);
    const isExternalName = spec.type === 'ExternalName';
    if (oldSpec && !isExternalName && oldSpec.type !== 'ExternalName') {
      // Cluster IPs are immutable; an update that leaves them out keeps the old ones
      // (upstream's patchAllocatedValues), so a PUT of an edited manifest works.
      if (spec.clusterIP === undefined || spec.clusterIP === '' || spec.clusterIP === null) {
        spec.clusterIP = oldSpec.clusterIP;
        spec.clusterIPs = oldSpec.clusterIPs;
      } else if (spec.clusterIP !== oldSpec.clusterIP) {
        causes.push(fieldError.invalid('spec.clusterIPs[0]', spec.clusterIP, 'field is immutable'));
      }
      spec.ipFamilies ??= oldSpec.ipFamilies;
      spec.ipFamilyPolicy ??= oldSpec.ipFamilyPolicy;
      if (usesNodePorts(String(spec.type)) && Array.isArray(spec.ports) && Array.isArray(oldSpec.ports)) {
        const oldPorts = oldSpec.ports.filter(isRecord);
        for (const p of spec.ports.filter(isRecord)) {
          if (p.nodePort) continue;
          const match =
            oldPorts.find((o) => o.port === p.port && o.protocol === p.protocol) ??
            oldPorts.find((o) => o.name && o.name === p.name);
          if (match && typeof match.nodePort === 'number' && match.nodePort > 0) p.nodePort = match.nodePort;
        }
      }
      if (
        spec.type === 'LoadBalancer' &&
        spec.externalTrafficPolicy === 'Local' &&
        !spec.healthCheckNodePort
      ) {
        if (typeof oldSpec.healthCheckNodePort === 'number' && oldSpec.healthCheckNodePort > 0)
          spec.healthCheckNodePort = oldSpec.healthCheckNodePort;
      }
    }
    if (!isExternalName) resolveFamilies(spec, clusterFamilies, causes);
    else {
      delete spec.clusterIPs;
      delete spec.ipFamilies;
      delete spec.ipFamilyPolicy;
    }
    if (causes.length > 0) throw invalid(subject(obj), causes);

    const had = allocatedOf(old);
    const ledger: Ledger = { undo: [] };
    try {
      allocateClusterIPs(spec, had, ledger, subject(obj));
      allocateNodePorts(spec, had, ledger, subject(obj));
    } catch (e) {
      rollback(ledger);
      throw e;
    }
    return obj;
  }

  function allocateClusterIPs(spec: Rec, had: Allocated, ledger: Ledger, subj: ErrorSubject): void {
    if (spec.type === 'ExternalName') return;
    const families = spec.ipFamilies as IPFamily[];
    if (spec.clusterIP === 'None') {
      spec.clusterIPs = ['None'];
      return;
    }
    const given = (strArray(spec.clusterIPs) ?? []).filter((ip) => ip !== '');
    const out: string[] = [];
    families.forEach((family, i) => {
      const alloc = allocFor(family)!;
      const want = given[i];
      if (want !== undefined) {
        const canonical = parseIP(want)?.text ?? want;
        if (had.ips.includes(canonical)) {
          out.push(canonical);
          return;
        }
        try {
          out.push(alloc.allocate(want));
          ledger.undo.push(() => alloc.release(want));
        } catch (e) {
          throw invalid(subj, [allocError(`spec.clusterIPs[${i}]`, want, e)]);
        }
        return;
      }
      try {
        const ip = alloc.allocateNext();
        ledger.undo.push(() => alloc.release(ip));
        out.push(ip);
      } catch (e) {
        throw invalid(subj, [allocError(`spec.clusterIPs[${i}]`, '', e)]);
      }
    });
    spec.clusterIPs = out;
    spec.clusterIP = out[0];
  }

  function allocateNodePorts(spec: Rec, had: Allocated, ledger: Ledger, subj: ErrorSubject): void {
    const type = String(spec.type);
    const ports = Array.isArray(spec.ports) ? spec.ports.filter(isRecord) : [];
    const mine = new Map<number, Set<string>>(); // node port -> protocols using it in this Service
    const take = (field: string, port: number) => {
      if (had.nodePorts.includes(port) || had.healthCheckNodePort === port) return;
      try {
        nodePorts.allocate(port);
        ledger.undo.push(() => nodePorts.release(port));
      } catch (e) {
        throw invalid(subj, [allocError(field, port, e)]);
      }
    };
    const next = (field: string): number => {
      try {
        const p = nodePorts.allocateNext();
        ledger.undo.push(() => nodePorts.release(p));
        return p;
      } catch (e) {
        throw invalid(subj, [allocError(field, 0, e)]);
      }
    };
    if (!usesNodePorts(type)) {
      for (const p of ports) delete p.nodePort;
    } else {
      const auto = type === 'NodePort' || spec.allocateLoadBalancerNodePorts !== false;
      ports.forEach((p, i) => {
        const field = `spec.ports[${i}].nodePort`;
        const proto = String(p.protocol);
        if (typeof p.nodePort === 'number' && p.nodePort > 0) {
          const users = mine.get(p.nodePort);
          // One Service may use a node port once per protocol (TCP and UDP DNS on one port).
          if (users?.has(proto)) throw invalid(subj, [fieldError.duplicate(field, p.nodePort)]);
          if (!users) take(field, p.nodePort);
          mine.set(p.nodePort, new Set([...(users ?? []), proto]));
        } else if (auto) {
          const port = next(field);
          p.nodePort = port;
          mine.set(port, new Set([proto]));
        }
      });
    }
    if (type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local') {
      const hc = spec.healthCheckNodePort;
      if (typeof hc === 'number' && hc > 0) take('spec.healthCheckNodePort', hc);
      else spec.healthCheckNodePort = next('spec.healthCheckNodePort');
    } else {
      delete spec.healthCheckNodePort;
    }
  }

  function releaseDropped(before: Allocated, after: Allocated): void {
    for (const ip of before.ips) {
      if (!after.ips.includes(ip)) ipAllocs.find((a) => a.contains(ip))?.release(ip);
    }
    const keep = new Set([
      ...after.nodePorts,
      ...(after.healthCheckNodePort ? [after.healthCheckNodePort] : []),
    ]);
    for (const p of [
      ...before.nodePorts,
      ...(before.healthCheckNodePort ? [before.healthCheckNodePort] : []),
    ]) {
      if (!keep.has(p)) nodePorts.release(p);
    }
  }

  return {
    prepareCreate(obj) {
      const out = prepare(obj, undefined);
      // A new Service starts with an empty status, as upstream's PrepareForCreate resets it.
      out.status = { loadBalancer: {} };
      return out;
    },
    prepareUpdate(obj, old) {
      const out = prepare(obj, old);
      releaseDropped(allocatedOf(old), allocatedOf(out));
      return out;
    },
    release(obj) {
      releaseDropped(allocatedOf(obj), { ips: [], nodePorts: [], healthCheckNodePort: undefined });
    },
    reserve(obj) {
      const a = allocatedOf(obj);
      for (const ip of a.ips) {
        const alloc = ipAllocs.find((x) => x.contains(ip));
        if (alloc && !alloc.isAllocated(ip)) alloc.allocate(ip);
      }
      for (const p of [...a.nodePorts, ...(a.healthCheckNodePort ? [a.healthCheckNodePort] : [])]) {
        if (nodePorts.contains(p) && !nodePorts.isAllocated(p)) nodePorts.allocate(p);
      }
    },
  };
}
