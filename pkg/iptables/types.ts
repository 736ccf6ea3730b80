/**
 * The one interface through which kube-proxy-ts touches iptables. The real implementation is
 * createIptablesRunner (runner.ts); createFakeIptables (fake.ts) implements it in memory for
 * tests. Table and chain names are plain strings: the tables are fixed by the kernel, the chains
 * by the caller's naming module.
 */
import type { RestorePayload, Table } from './payload.ts';

export type { RestorePayload, Table };
export type Family = 'IPv4' | 'IPv6';
export type Backend = 'legacy' | 'nft';

/** Options of a restore. Both are named, never positional booleans (upstream FlushFlag/RestoreCountersFlag). */
export interface RestoreOptions {
  /**
   * true: each table in the payload is emptied first (all rules flushed, user chains deleted).
   * false (`--noflush`): a `:CHAIN` line creates the chain or empties an existing one, chains the
   * payload does not mention keep their rules, and built-in chains are never emptied by their
   * `:CHAIN` line (only their policy is set).
   */
  readonly flush: boolean;
  /** true (`--counters`): take the `[packets:bytes]` of the payload instead of zeroing them. */
  readonly counters: boolean;
}

/** Where ensureRule puts a missing rule: first (`-I`) or last (`-A`) in the chain. */
export type RulePosition = 'prepend' | 'append';

export interface Iptables {
  readonly family: Family;
  readonly backend: Backend;

  /**
   * Feeds `payload` (one or more `*table ... COMMIT` sections) to iptables-restore on stdin:
   * `iptables-restore -w 5 -W 100000 [--noflush] [--counters]`. iptables-restore commits table by
   * table, so when a later table fails the earlier ones are already in; the failing table is left
   * as it was. Throws RestoreError (with the rejected line) or IptablesError `lock-timeout`.
   * On nft a big `--noflush` table section goes in as several transactions (split.ts says why and
   * how every state between them stays consistent); a failure can then leave the earlier ones in.
   */
  restoreAll(payload: RestorePayload, opts: RestoreOptions): Promise<void>;

  /** Like restoreAll, with `-T table`: only that table's section of the payload is applied. */
  restore(table: Table, payload: RestorePayload, opts: RestoreOptions): Promise<void>;

  /** `iptables-save -t table`: the table's current contents as text (see parse.ts). */
  save(table: Table): Promise<string>;

  /** `iptables-save`: every table the kernel has for this family. */
  saveAll(): Promise<string>;

  /**
   * Creates the chain if missing (`-N`). Resolves true when it already existed, false when this
   * call created it.
   */
  ensureChain(table: Table, chain: string): Promise<boolean>;

  /**
   * Makes sure the rule `args` is in `chain`: checks with `-C` first, adds it with `-I`
   * (prepend) or `-A` (append) only when missing. Resolves true when it already existed. A rule
   * "exists" when iptables' own comparison says so (the fake compares the words exactly).
   */
  ensureRule(position: RulePosition, table: Table, chain: string, args: readonly string[]): Promise<boolean>;

  /** Removes the rule if present (`-C`, then `-D`); a missing rule is not an error. */
  deleteRule(table: Table, chain: string, args: readonly string[]): Promise<void>;

  /**
   * Empties and deletes the chain (`-F`, then `-X`). A missing chain is not an error; a chain
   * still jumped to from another chain is (IptablesError `exec-failed`).
   */
  deleteChain(table: Table, chain: string): Promise<void>;

  /** Whether the chain exists (`-S chain`). */
  chainExists(table: Table, chain: string): Promise<boolean>;

  /** Removes every rule of the chain (`-F`); IptablesError `not-found` when it does not exist. */
  flushChain(table: Table, chain: string): Promise<void>;

  /** The iptables version (e.g. `1.8.9`), detected once on first use. */
  version(): Promise<string>;

  /** Whether MASQUERADE takes `--random-fully` (iptables >= 1.6.2). */
  hasRandomFully(): Promise<boolean>;
}
