/**
 * The one error type of configuration handling. Callers branch on `code`, never on the message;
 * every issue names the field (a flag such as `--iptables-masquerade-bit`, or a dotted path in
 * the KubeProxyConfiguration file such as `iptables.masqueradeBit`) and the reason.
 */

export type ConfigErrorCode =
  /** A command-line flag is unknown, lacks its value, or its value is malformed or out of range. */
  | 'invalid-flag'
  /** The --config file cannot be parsed, has a wrong type, or a value fails validation. */
  | 'invalid-config'
  /** The --config file cannot be read. */
  | 'unreadable-config'
  /** A proxy mode upstream knows (ipvs, nftables, kernelspace) but kube-proxy-ts does not implement. */
  | 'unsupported-mode';

export interface ConfigIssue {
  /** `--flag-name` or a dotted KubeProxyConfiguration path (`conntrack.maxPerCore`). */
  readonly field: string;
  readonly reason: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly issues: readonly ConfigIssue[];

  constructor(code: ConfigErrorCode, issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.reason}`).join('; '));
    this.code = code;
    this.issues = issues;
  }

  /** Shorthand for the common single-issue case. */
  static of(code: ConfigErrorCode, field: string, reason: string): ConfigError {
    return new ConfigError(code, [{ field, reason }]);
  }
}
