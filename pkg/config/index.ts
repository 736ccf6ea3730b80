/** Configuration of kube-proxy-ts: flags and KubeProxyConfiguration files, as upstream's. */
export type {
  ClientConnectionConfig,
  ConntrackConfig,
  DetectLocalMode,
  IptablesBackend,
  IptablesConfig,
  LoggingFormat,
  ProxyConfig,
  ProxyMode,
} from './config.ts';
export { HEALTHZ_PORT, METRICS_PORT, NODE_PORT_ADDRESSES_PRIMARY } from './config.ts';
export { formatGoDuration, parseGoDuration } from './duration.ts';
export { ConfigError, type ConfigErrorCode, type ConfigIssue } from './errors.ts';
export {
  CONFIG_API_VERSION,
  CONFIG_KIND,
  parseConfigFile,
  serializeConfig,
  writeConfigFile,
} from './file.ts';
export { FLAGS, type FlagSpec, helpText, parseArgs } from './flags.ts';
export { type ResolvedConfig, type ResolveEnv, type ResolveResult, resolveConfig } from './resolve.ts';
export { type ValidationIssue, validateDraft } from './validate.ts';
