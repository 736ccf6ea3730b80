/**
 * The conntrack client's public types. The proxier depends on `ConntrackClient` only; the real
 * one speaks ctnetlink (`client.ts`), the fake keeps flows in memory (`fake.ts`).
 */

export type ConntrackFamily = 'IPv4' | 'IPv6';
export type ConntrackProtocol = 'UDP' | 'SCTP' | 'TCP';

/** One direction of a flow. Addresses are canonical text (dotted quad, RFC 5952 for IPv6). */
export interface FlowTuple {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
}

/**
 * A conntrack entry as the kernel reports it. For a DNATed service flow, `original.dst` is the
 * service IP and `reply.src` the endpoint that answers; for an un-NATed one both are the same.
 */
export interface ConntrackFlow {
  readonly family: ConntrackFamily;
  readonly protocol: ConntrackProtocol;
  readonly original: FlowTuple;
  readonly reply: FlowTuple;
  /** IPS_* bits (constants.ts). */
  readonly status: number;
  readonly mark: number;
  /** Kernel's entry id (CTA_ID). */
  readonly id?: number;
  /** Conntrack zone; absent for the default zone 0. */
  readonly zone?: number;
  /** Seconds left before the entry expires. */
  readonly timeout?: number;
}

/**
 * Narrows a dump to the entries that can matter. It is checked on each entry's bytes before the
 * entry becomes a flow, and making flows is most of what a big dump costs, so a caller that
 * knows which addresses it looks for should say so. Every set given must hold the entry's
 * address; text that is not an address of the dump's family matches nothing.
 */
export interface DumpFilter {
  /** Original destinations: frontends (service, external, load-balancer IPs), node IPs. */
  readonly originalDestinations?: Iterable<string>;
  /** Reply sources: for a DNATed flow, the endpoint it was sent to. */
  readonly replySources?: Iterable<string>;
}

export interface DeleteError {
  readonly flow: ConntrackFlow;
  /** Positive errno (e.g. 1 EPERM, 22 EINVAL, 110 ETIMEDOUT when no answer came). */
  readonly errno: number;
  readonly message: string;
}

/**
 * What `delete` did: every flow given ends in exactly one of `deleted`, `alreadyGone` or
 * `errors`. `requests` counts the delete messages written, retries included.
 */
export interface DeleteResult {
  readonly deleted: number;
  readonly alreadyGone: number;
  readonly errors: readonly DeleteError[];
  readonly requests: number;
}

/** Cumulative request counts since the client was created. */
export interface ConntrackStats {
  /** Dump requests written (a retried dump counts each attempt). */
  readonly dumpRequests: number;
  /** Delete messages written (resends count again). */
  readonly deleteRequests: number;
  /** Failed dumps plus flows that could not be deleted (ENOENT is not an error). */
  readonly errors: number;
}

export interface ConntrackClient {
  /**
   * Lists the entries of one family and L4 protocol with one netlink dump request. The kernel
   * filters by family and (kernel >= 5.9, CTA_FILTER) by protocol; the client filters again, so
   * older kernels give the same answer. Retries a few times when the dump is interrupted (the
   * table changed under it: EINTR) or messages were lost (ENOBUFS); when every attempt was
   * interrupted it returns the last, possibly partial, list as upstream kube-proxy does.
   * Rejects with a `ConntrackError` on any other failure. With a `filter`, only the entries that
   * pass it are returned (still one dump request).
   */
  dump(family: ConntrackFamily, protocol: ConntrackProtocol, filter?: DumpFilter): Promise<ConntrackFlow[]>;
  /**
   * Deletes the given entries, each by its original tuple (and zone), writing all requests
   * before reading the answers (bounded by a window so acks are never dropped). An entry that is
   * already gone (ENOENT) counts as success. Never rejects: failures are listed per flow so the
   * sync loop carries on.
   */
  delete(flows: readonly ConntrackFlow[]): Promise<DeleteResult>;
  stats(): ConntrackStats;
  /** Closes the socket; idempotent. Later calls fail with code `closed`. */
  close(): void;
}
