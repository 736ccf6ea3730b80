/**
 * Runs bash snippets against hack/kind/e2e.sh sourced (its main only runs when executed), so
 * tests use the script's own variables and functions rather than copies of them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '../../..');
export const E2E_SCRIPT = join(REPO_ROOT, 'hack/kind/e2e.sh');
export const MANIFEST_PATH = join(REPO_ROOT, 'hack/deploy/kube-proxy-ts.yaml');

/** The e2e script's environment knobs, unset so that its defaults apply. */
const KNOBS = ['CLUSTER_NAME', 'IMAGE', 'KEEP_CLUSTER', 'AGNHOST_IMAGE', 'TIMEOUT', 'UDP_RECOVERY_SECONDS'];

/** Sources e2e.sh, then runs `snippet` with `args` as $1...; returns its stdout. */
export function inE2eScript(snippet: string, args: readonly string[] = [], input = ''): string {
  const env = { ...process.env };
  for (const k of KNOBS) delete env[k];
  return execFileSync('bash', ['-c', `source "$E2E_SCRIPT"\n${snippet}`, 'bash', ...args], {
    encoding: 'utf8',
    input,
    env: { ...env, E2E_SCRIPT },
  });
}

/** The manifest as e2e.sh applies it to a cluster with these values. */
export function renderedManifest(podCIDR: string, apiserverHost: string, apiserverPort: string): string {
  return inE2eScript(
    'render_manifest "$1" "$2" "$3" "$IMAGE"',
    [podCIDR, apiserverHost, apiserverPort],
    readFileSync(MANIFEST_PATH, 'utf8'),
  );
}
