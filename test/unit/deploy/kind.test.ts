import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadAllYaml,
  loadYaml,
  type V1Deployment,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCIDR } from '../../../pkg/net/ip.ts';
import { E2E_SCRIPT, inE2eScript, REPO_ROOT } from './e2e-script.ts';
import { rawDocuments } from './yaml.ts';

interface KindCluster {
  kind: string;
  apiVersion: string;
  networking: { kubeProxyMode: string; podSubnet: string; serviceSubnet: string };
  nodes: { role: string }[];
}

const cluster = loadYaml<KindCluster>(readFileSync(join(REPO_ROOT, 'hack/kind/cluster.yaml'), 'utf8'));

function commandPath(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

describe('hack/kind/cluster.yaml', () => {
  it('is a kind Cluster without kube-proxy, one control plane and one worker', () => {
    expect(cluster.kind).toBe('Cluster');
    expect(cluster.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
    expect(cluster.networking.kubeProxyMode).toBe('none');
    expect(cluster.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker']);
  });

  it('sets disjoint IPv4 pod and service subnets', () => {
    const pods = parseCIDR(cluster.networking.podSubnet);
    const services = parseCIDR(cluster.networking.serviceSubnet);
    expect(pods?.family).toBe('IPv4');
    expect(services?.family).toBe('IPv4');
    // Both are /16 or wider here, so they are disjoint exactly when their first two octets differ.
    expect(pods!.prefixLength).toBeLessThanOrEqual(16);
    expect(services!.prefixLength).toBeLessThanOrEqual(16);
    expect([...pods!.network.bytes.slice(0, 2)]).not.toEqual([...services!.network.bytes.slice(0, 2)]);
    // Our manifest's default is kind's default pod subnet; e2e.sh must rewrite it for this cluster.
    expect(pods!.text).not.toBe('10.244.0.0/16');
  });
});

describe('hack/kind/e2e.sh: static checks', () => {
  it('is valid bash (bash -n)', () => {
    expect(() => execFileSync('bash', ['-n', E2E_SCRIPT], { encoding: 'utf8' })).not.toThrow();
  });

  it('starts with set -euo pipefail', () => {
    expect(readFileSync(E2E_SCRIPT, 'utf8')).toMatch(/^set -euo pipefail$/m);
  });

  // shellcheck comes from Debian's shellcheck package; only its absence skips this.
  it.skipIf(commandPath('shellcheck') === undefined)('passes shellcheck', () => {
    const r = spawnSync('shellcheck', ['--shell=bash', E2E_SCRIPT], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('hack/kind/e2e.sh: functions', () => {
  it('sourcing it defines the functions and runs nothing', () => {
    const out = inE2eScript('declare -F render_manifest pod_subnet_of main >/dev/null && echo sourced');
    expect(out).toBe('sourced\n');
  });

  it('pod_subnet_of reads networking.podSubnet from the ClusterConfiguration kind writes', () => {
    const { podSubnet, serviceSubnet } = cluster.networking;
    const clusterConfiguration = [
      'apiServer:',
      '  certSANs:',
      '  - localhost',
      'apiVersion: kubeadm.k8s.io/v1beta3',
      'clusterName: kube-proxy-ts-e2e',
      'kind: ClusterConfiguration',
      'networking:',
      '  dnsDomain: cluster.local',
      `  podSubnet: ${podSubnet}`,
      `  serviceSubnet: ${serviceSubnet}`,
      '',
    ].join('\n');
    expect(inE2eScript('pod_subnet_of', [], clusterConfiguration)).toBe(`${podSubnet}\n`);
    expect(inE2eScript('pod_subnet_of', [], `networking:\n  podSubnet: "${podSubnet}"\n`)).toBe(
      `${podSubnet}\n`,
    );
    expect(inE2eScript('pod_subnet_of', [], 'networking:\n  serviceSubnet: 10.96.0.0/16\n')).toBe('');
  });

  it('render_manifest sets the image it is given', () => {
    const out = inE2eScript('render_manifest 10.1.0.0/16 10.0.0.1 6443 registry.example/kpts:v1 <"$1"', [
      join(REPO_ROOT, 'hack/deploy/kube-proxy-ts.yaml'),
    ]);
    expect(out.match(/^\s*image: .*$/gm)?.map((l) => l.trim())).toEqual(['image: registry.example/kpts:v1']);
  });
});

describe('hack/kind/e2e.sh: the smoke-test objects', () => {
  /** Typed objects, after checking that the typed load dropped no field (no typo the API would reject). */
  function objects(text: string): { kind?: string }[] {
    const typed = loadAllYaml(text) as { kind?: string }[];
    expect(typed).toEqual(rawDocuments(text));
    return typed;
  }

  it('workload_manifest: 2 agnhost netexec pods, a ClusterIP and a NodePort Service, a client pod', () => {
    const docs = objects(inE2eScript('workload_manifest'));
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'Deployment', 'Service', 'Service', 'Pod']);
    const deployment = docs[1] as V1Deployment;
    expect(deployment.spec?.replicas).toBe(2);
    const server = deployment.spec?.template.spec?.containers[0];
    expect(server?.image).toMatch(/^registry\.k8s\.io\/e2e-test-images\/agnhost:/);
    expect(server?.args).toEqual(['netexec', '--http-port=8080', '--udp-port=8081']);
    const [clusterIP, nodePort] = [docs[2] as V1Service, docs[3] as V1Service];
    for (const svc of [clusterIP, nodePort]) {
      expect(svc.spec?.selector).toEqual(deployment.spec?.template.metadata?.labels);
      expect(svc.spec?.ports?.map((p) => [p.protocol, p.port, p.targetPort])).toEqual([
        ['TCP', 80, 8080],
        ['UDP', 81, 8081],
      ]);
    }
    expect(clusterIP.spec?.type).toBe('ClusterIP');
    expect(nodePort.spec?.type).toBe('NodePort');
    const fixed = inE2eScript('echo "$NODEPORT_TCP $NODEPORT_UDP"').trim().split(' ').map(Number);
    expect(nodePort.spec?.ports?.map((p) => p.nodePort)).toEqual(fixed);
  });

  it('udp_client_manifest: a shell loop sending from the fixed source port to the ClusterIP', () => {
    const [pod] = objects(inE2eScript('udp_client_manifest 10.98.12.34')) as V1Pod[];
    const container = pod!.spec!.containers[0]!;
    expect(container.command).toEqual(['/bin/sh', '-c']);
    const script = container.args![0]!;
    const port = inE2eScript('printf %s "$UDP_CLIENT_PORT"');
    expect(script).toContain(`nc -u -w 1 -p ${port} 10.98.12.34 81`);
    // The log line format udp_client_heard_from greps for.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    expect(script).toContain('echo "$(date +%s) try=$i reply=${reply:-none}"');
    expect(() => execFileSync('sh', ['-n', '-c', script])).not.toThrow();
  });

  it('udp_client_heard_from matches whole pod names in the client log only', () => {
    const log = '1700000000 try=1 reply=none\n1700000001 try=2 reply=echo-abc-12\n';
    const heard = (names: string[]) =>
      spawnSync(
        'bash',
        [
          '-c',
          'source "$1"; shift; kc() { printf "%s" "$LOG"; }; udp_client_heard_from "$@"',
          'bash',
          E2E_SCRIPT,
          ...names,
        ],
        {
          env: { ...process.env, LOG: log },
        },
      ).status;
    expect(heard(['echo-abc-12'])).toBe(0);
    expect(heard(['echo-xyz', 'echo-abc-12'])).toBe(0);
    expect(heard(['echo-abc-1'])).toBe(1);
    expect(heard(['none-such'])).toBe(1);
  });
});

/**
 * Runs e2e.sh with fake docker, kind and kubectl that record their arguments, and a PATH holding
 * only them and the few utilities the script needs: the real tools are never reached.
 */
describe('hack/kind/e2e.sh: tool checks and cleanup, with fake tools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kpts-e2e-sh-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const UTILITIES = ['dirname', 'date', 'mktemp', 'rm', 'grep', 'awk', 'sort', 'uniq', 'tr', 'sleep', 'cat'];

  let runCount = 0;
  function run(fakes: Record<string, string>, env: Record<string, string> = {}) {
    const bin = join(dir, `bin-${runCount}`);
    const calls = join(dir, `calls-${runCount++}`);
    mkdirSync(bin);
    for (const u of UTILITIES) symlinkSync(commandPath(u)!, join(bin, u));
    for (const [name, body] of Object.entries(fakes)) {
      writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >>"$CALLS"\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    const r = spawnSync(commandPath('bash')!, [E2E_SCRIPT], {
      encoding: 'utf8',
      env: { PATH: bin, CALLS: calls, ...env },
    });
    const recorded = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [];
    return { status: r.status, stderr: r.stderr, calls: recorded };
  }

  const kindCreateFails = `case "$1 $2" in
  "create cluster") exit 1 ;;
esac
exit 0`;

  it.each([
    ['docker', {}],
    ['kind', { docker: 'exit 0' }],
    ['kubectl', { docker: 'exit 0', kind: 'exit 0' }],
  ])('names %s when it is missing', (missing, fakes) => {
    const r = run(fakes);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`FAIL: ${missing} is not installed or not on PATH`);
  });

  it('says so when the docker daemon does not answer', () => {
    const r = run({ docker: '[ "$1" = info ] && exit 1; exit 0', kind: 'exit 0', kubectl: 'exit 0' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('its daemon does not answer');
    expect(r.calls).not.toContain(expect.stringMatching(/^docker build/));
  });

  it('refuses to touch an existing cluster of the same name', () => {
    const r = run({
      docker: 'exit 0',
      kind: '[ "$1 $2" = "get clusters" ] && echo kube-proxy-ts-e2e; exit 0',
      kubectl: 'exit 0',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('a kind cluster named kube-proxy-ts-e2e exists already');
    expect(r.calls.filter((c) => /^kind (create|delete)/.test(c))).toEqual([]);
  });

  it('builds the image from the repository root and deletes the cluster when a step fails', () => {
    const r = run({ docker: 'exit 0', kind: kindCreateFails, kubectl: 'exit 1' });
    expect(r.status).toBe(1);
    expect(r.calls).toContain(
      `docker build -f ${REPO_ROOT}/hack/deploy/Dockerfile -t kube-proxy-ts:dev ${REPO_ROOT}`,
    );
    expect(r.calls).toContain(
      `kind create cluster --name kube-proxy-ts-e2e --config ${REPO_ROOT}/hack/kind/cluster.yaml`,
    );
    expect(r.calls.at(-1)).toBe('kind delete cluster --name kube-proxy-ts-e2e');
  });

  it('keeps the cluster with KEEP_CLUSTER=1, and honours CLUSTER_NAME and IMAGE', () => {
    const r = run(
      { docker: 'exit 0', kind: kindCreateFails, kubectl: 'exit 1' },
      { KEEP_CLUSTER: '1', CLUSTER_NAME: 'other', IMAGE: 'kpts:test' },
    );
    expect(r.status).toBe(1);
    expect(r.calls).toContain(
      `docker build -f ${REPO_ROOT}/hack/deploy/Dockerfile -t kpts:test ${REPO_ROOT}`,
    );
    expect(r.calls).toContain(
      `kind create cluster --name other --config ${REPO_ROOT}/hack/kind/cluster.yaml`,
    );
    expect(r.calls.filter((c) => c.startsWith('kind delete'))).toEqual([]);
    expect(r.stderr).toContain('KEEP_CLUSTER=1: cluster other kept');
  });
});
