/**
 * iptables versions and the lock-wait flags they allow (upstream: getIPTablesWaitFlag,
 * getIPTablesRestoreWaitFlag in pkg/util/iptables/iptables.go). Pure functions.
 */

/** What upstream assumes when `iptables --version` cannot be read (the oldest with `-C`). */
export const MIN_CHECK_VERSION = '1.4.11';

/** `--random-fully` on MASQUERADE appeared in iptables 1.6.2. */
export const RANDOM_FULLY_MIN_VERSION = '1.6.2';

/** The version in `iptables v1.8.9 (nf_tables)` and the like, or undefined. */
export function parseVersion(output: string): string | undefined {
  return /v(\d+(?:\.\d+)+)/.exec(output)?.[1];
}

/** Compares dotted versions numerically: negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

/**
 * Wait flags for the plain `iptables` command: wait up to 5 s for the xtables lock, polling every
 * 100 ms where the version supports it.
 */
export function iptablesWaitFlags(version: string): string[] {
  if (versionAtLeast(version, '1.6.1')) return ['-w', '5', '-W', '100000'];
  if (versionAtLeast(version, '1.4.22')) return ['-w', '5'];
  if (versionAtLeast(version, '1.4.20')) return ['-w'];
  return [];
}

/**
 * Wait flags for `iptables-restore`. Before 1.6.2 restore took only a bare `-w`, and only builds
 * whose `iptables-restore --version` answers know it at all (`restoreReportsVersion`).
 */
export function restoreWaitFlags(version: string, restoreReportsVersion: boolean): string[] {
  if (versionAtLeast(version, '1.6.2')) return ['-w', '5', '-W', '100000'];
  return restoreReportsVersion ? ['-w'] : [];
}
