/** Kernel parameters: /proc/sys access and the conntrack settings applied at start-up. */
export {
  applyConntrackSysctls,
  CONNTRACK_MAX_LIMIT,
  type ConntrackSysctlConfig,
  type ConntrackSysctlDeps,
  conntrackMax,
  HASHSIZE_PATH,
  type HashsizeIO,
  moduleHashsize,
  type SysctlOutcome,
} from './conntrack.ts';
export {
  procSysctl,
  readSysctl,
  readSysctlSync,
  readTcpBeLiberal,
  SysctlError,
  type SysctlErrorCode,
  type SysctlIO,
  sysctlPath,
  writeSysctl,
} from './sysctl.ts';
