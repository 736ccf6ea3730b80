/**
 * The rules that do not depend on services: the masquerade mark, KUBE-POSTROUTING,
 * KUBE-MARK-MASQ, KUBE-FORWARD, KUBE-FIREWALL, and the jumps from the built-in chains that a full
 * sync ensures with `iptables -C/-I` (upstream's iptablesJumpChains and the kubelet duplicates).
 */
import type { LineBuffer, Table } from '../pkg/iptables/payload.ts';
import { comment } from '../pkg/iptables/payload.ts';
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from './chains.ts';

/** nfacct counter on the INVALID drop rule. */
export const NFACCT_CT_STATE_INVALID_DROPPED = 'ct_state_invalid_dropped_pkts';
/** nfacct counter on the localhost NodePort rules. */
export const NFACCT_LOCALHOST_NODEPORTS_ACCEPTED = 'localhost_nps_accepted_pkts';

/** `1 << bit` printed as Go's `%#08x`: `0x00004000` for bit 14 (width counts the digits only). */
export function masqueradeMark(bit: number): string {
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new RangeError(`bad masquerade bit ${bit}`);
  return `0x${(2 ** bit).toString(16).padStart(8, '0')}`;
}

export interface BuiltinJump {
  readonly table: Table;
  /** The built-in chain the jump is inserted into (INPUT, FORWARD, OUTPUT, PREROUTING, ...). */
  readonly chain: string;
  /** The kube-proxy chain jumped to. */
  readonly target: string;
  /** Arguments after `-A <chain>`: extra match, comment, `-j target`. */
  readonly args: readonly string[];
}

function jump(
  table: Table,
  chain: string,
  target: string,
  text: string,
  extra: readonly string[] = [],
): BuiltinJump {
  // EnsureRule passes arguments to iptables as argv, so the comment is one unquoted word here.
  const args = [...extra, ...(text === '' ? [] : ['-m', 'comment', '--comment', text]), '-j', target];
  return { table, chain, target, args };
}

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW'];

/**
 * The jumps a full sync ensures (chain created if missing, rule inserted at the top if absent),
 * in upstream's order. Partial syncs skip them to save ~24 iptables runs (#114181). The two
 * KUBE-FIREWALL jumps duplicate kubelet's and are not removed by cleanup.
 */
export function renderBuiltinJumps(): BuiltinJump[] {
  return [
    jump('filter', 'INPUT', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', NEW),
    jump('filter', 'FORWARD', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', NEW),
    jump('filter', 'INPUT', KUBE_NODEPORTS, 'kubernetes health check service ports'),
    jump('filter', 'FORWARD', KUBE_SERVICES, 'kubernetes service portals', NEW),
    jump('filter', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals', NEW),
    jump('filter', 'FORWARD', KUBE_FORWARD, 'kubernetes forwarding rules'),
    jump('filter', 'INPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', NEW),
    jump('filter', 'OUTPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', NEW),
    jump('filter', 'FORWARD', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', NEW),
    jump('nat', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals'),
    jump('nat', 'PREROUTING', KUBE_SERVICES, 'kubernetes service portals'),
    jump('nat', 'POSTROUTING', KUBE_POSTROUTING, 'kubernetes postrouting rules'),
    jump('filter', 'INPUT', KUBE_FIREWALL, ''),
    jump('filter', 'OUTPUT', KUBE_FIREWALL, ''),
  ];
}

/** nat KUBE-POSTROUTING (the mark-xor trick) and KUBE-MARK-MASQ. */
export function writeNatStaticRules(rules: LineBuffer, mark: string, hasRandomFully: boolean): void {
  rules.write('-A', KUBE_POSTROUTING, '-m', 'mark', '!', '--mark', `${mark}/${mark}`, '-j', 'RETURN');
  // Clear the bit so a packet that crosses the stack again is not masqueraded twice.
  rules.write('-A', KUBE_POSTROUTING, '-j', 'MARK', '--xor-mark', mark);
  rules.write(
    '-A',
    KUBE_POSTROUTING,
    comment('kubernetes service traffic requiring SNAT'),
    '-j',
    'MASQUERADE',
    hasRandomFully ? ['--random-fully'] : [],
  );
  rules.write('-A', KUBE_MARK_MASQ, '-j', 'MARK', '--or-mark', mark);
}

/**
 * The KUBE-FIREWALL anti-martian rule guarding route_localnet (issue #90259). It must stay
 * byte-identical to kubelet's copy.
 */
export function writeKubeletFirewallRule(rules: LineBuffer): void {
  rules.write(
    '-A',
    KUBE_FIREWALL,
    comment('block incoming localnet connections'),
    '-d',
    '127.0.0.0/8',
    '!',
    '-s',
    '127.0.0.0/8',
    '-m',
    'conntrack',
    '!',
    '--ctstate',
    'RELATED,ESTABLISHED,DNAT',
    '-j',
    'DROP',
  );
}

/**
 * filter KUBE-FORWARD. INVALID packets are dropped unless nf_conntrack_tcp_be_liberal is set
 * (issues #74839, #117924); the nfacct match only when the counter exists.
 */
export function writeForwardRules(
  rules: LineBuffer,
  mark: string,
  tcpBeLiberal: boolean,
  nfacct: ReadonlySet<string>,
): void {
  if (!tcpBeLiberal) {
    rules.write(
      '-A',
      KUBE_FORWARD,
      '-m',
      'conntrack',
      '--ctstate',
      'INVALID',
      nfacct.has(NFACCT_CT_STATE_INVALID_DROPPED)
        ? ['-m', 'nfacct', '--nfacct-name', NFACCT_CT_STATE_INVALID_DROPPED]
        : [],
      '-j',
      'DROP',
    );
  }
  rules.write(
    '-A',
    KUBE_FORWARD,
    comment('kubernetes forwarding rules'),
    '-m',
    'mark',
    '--mark',
    `${mark}/${mark}`,
    '-j',
    'ACCEPT',
  );
  rules.write(
    '-A',
    KUBE_FORWARD,
    comment('kubernetes forwarding conntrack rule'),
    '-m',
    'conntrack',
    '--ctstate',
    'RELATED,ESTABLISHED',
    '-j',
    'ACCEPT',
  );
}
