/**
 * Validation shared by all types (names, labels) and of the simple types (Namespace, Node,
 * EndpointSlice). Each function returns the field errors it found; callers turn a non-empty list
 * into a 422 Invalid. Messages follow upstream's wording so that `kubectl` output looks familiar.
 */
import { parseIP } from '../net/ip.ts';
import { fieldError, type StatusCause } from './errors.ts';
import type { KubeObject } from './resources.ts';

export type NameRule = 'dns1123Subdomain' | 'dns1123Label' | 'dns1035Label';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function nameProblem(name: string, rule: NameRule): string | undefined {
  switch (rule) {
    case 'dns1123Label':
      if (name.length > 63) return 'must be no more than 63 characters';
      return DNS1123_LABEL.test(name)
        ? undefined
        : "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
    case 'dns1035Label':
      if (name.length > 63) return 'must be no more than 63 characters';
      return DNS1035_LABEL.test(name)
        ? undefined
        : "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
    case 'dns1123Subdomain':
      if (name.length > 253) return 'must be no more than 253 characters';
      return DNS1123_SUBDOMAIN.test(name)
        ? undefined
        : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? '' : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1 && (prefix === '' || nameProblem(prefix, 'dns1123Subdomain')))
    return 'prefix part must be a DNS-1123 subdomain';
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

export function validateObjectMeta(obj: KubeObject, rule: NameRule): StatusCause[] {
  const causes: StatusCause[] = [];
  const m = obj.metadata;
  if (typeof m !== 'object' || m === null) return [fieldError.required('metadata')];
  if (!m.name) {
    causes.push(fieldError.required('metadata.name', 'name or generateName is required'));
  } else {
    const p = nameProblem(m.name, rule);
    if (p) causes.push(fieldError.invalid('metadata.name', m.name, p));
  }
  for (const [field, map] of [
    ['metadata.labels', m.labels],
    ['metadata.annotations', m.annotations],
  ] as const) {
    if (map === undefined || map === null) continue;
    if (typeof map !== 'object') {
      causes.push(fieldError.invalid(field, map, 'must be a map of strings'));
      continue;
    }
    for (const [k, v] of Object.entries(map)) {
      const kp = labelKeyProblem(k);
      if (kp) causes.push(fieldError.invalid(field, k, kp));
      if (typeof v !== 'string') causes.push(fieldError.invalid(`${field}.${k}`, v, 'must be a string'));
      else if (field === 'metadata.labels' && (v.length > 63 || !LABEL_VALUE.test(v))) {
        causes.push(
          fieldError.invalid(
            field,
            v,
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
          ),
        );
      }
    }
  }
  return causes;
}

export function isPortNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

export function ianaServiceNameProblem(name: string): string | undefined {
  if (name.length > 15) return 'must be no more than 15 characters';
  if (!IANA_SVC_NAME.test(name) || name.includes('--')) {
    return 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-); must contain at least one letter; hyphens cannot be adjacent or at either end';
  }
  return undefined;
}

export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function validateEndpointSlice(obj: KubeObject): StatusCause[] {
  const causes = validateObjectMeta(obj, 'dns1123Subdomain');
  const types = ['IPv4', 'IPv6', 'FQDN'];
  const addressType = obj.addressType;
  if (addressType === undefined) causes.push(fieldError.required('addressType'));
  else if (typeof addressType !== 'string' || !types.includes(addressType)) {
    causes.push(fieldError.notSupported('addressType', addressType, types));
  }
  const endpoints = obj.endpoints ?? [];
  if (!Array.isArray(endpoints)) causes.push(fieldError.invalid('endpoints', endpoints, 'must be a list'));
  else
    endpoints.forEach((ep: unknown, i) => {
      const at = `endpoints[${i}]`;
      if (!isRecord(ep)) {
        causes.push(fieldError.invalid(at, ep, 'must be an object'));
        return;
      }
      const addrs = ep.addresses;
      if (!Array.isArray(addrs) || addrs.length === 0) {
        causes.push(fieldError.required(`${at}.addresses`));
        return;
      }
      if (addrs.length > 100)
        causes.push(fieldError.invalid(`${at}.addresses`, addrs.length, 'must have at most 100 items'));
      addrs.forEach((a: unknown, j) => {
        if (addressType === 'FQDN') return;
        const ip = typeof a === 'string' ? parseIP(a) : undefined;
        if (!ip || ip.family !== addressType) {
          causes.push(
            fieldError.invalid(`${at}.addresses[${j}]`, a, `must be a valid ${String(addressType)} address`),
          );
        }
      });
    });
  const ports = obj.ports ?? [];
  if (!Array.isArray(ports)) causes.push(fieldError.invalid('ports', ports, 'must be a list'));
  else
    ports.forEach((p: unknown, i) => {
      const at = `ports[${i}]`;
      if (!isRecord(p)) {
        causes.push(fieldError.invalid(at, p, 'must be an object'));
        return;
      }
      if (p.port !== undefined && p.port !== null && !isPortNumber(p.port)) {
        causes.push(fieldError.invalid(`${at}.port`, p.port, 'must be between 1 and 65535, inclusive'));
      }
      if (p.protocol !== undefined && p.protocol !== null && !PROTOCOLS.includes(p.protocol as 'TCP')) {
        causes.push(fieldError.notSupported(`${at}.protocol`, p.protocol, PROTOCOLS));
      }
    });
  return causes;
}

/** Defaults EndpointSlice fields as upstream's v1 defaulting does (port protocol and name). */
export function defaultEndpointSlice(obj: KubeObject): KubeObject {
  const out = structuredClone(obj);
  if (Array.isArray(out.ports)) {
    out.ports = out.ports.map((p: unknown) =>
      isRecord(p) ? { ...p, protocol: p.protocol ?? 'TCP', name: p.name ?? '' } : p,
    );
  }
  return out;
}
