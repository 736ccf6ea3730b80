/**
 * `kube-proxy-ts render` and `kube-proxy-ts trace` on the fixtures in test/fixtures/render:
 * upstream's TestOverallIPTablesRules cluster as a multi-document YAML and as a List JSON.
 * render must print exactly what the renderer gives for the same cluster built by hand (so file
 * reading, validation and the trackers add nothing and lose nothing), the same for both files and
 * for any document order, and the same on every run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderCommand, splitFamilies } from '../../../../cmd/kube-proxy-ts/render.ts';
import { parseDocuments } from '../../../../cmd/kube-proxy-ts/state-from-files.ts';
import { traceCommand } from '../../../../cmd/kube-proxy-ts/trace.ts';
import { renderRules } from '../../../../proxier/render.ts';
import { tablesAfterFullSync } from '../../../../proxier/trace/full-sync.ts';
import { fakeProxierConfig } from '../../../golden/support/builders.ts';
import { overallIPTablesRulesState } from '../../../golden/support/overall-cluster.ts';

const FIXTURES = new URL('../../../fixtures/render/', import.meta.url).pathname;
const YAML = join(FIXTURES, 'overall.yaml');
const LIST = join(FIXTURES, 'overall-list.json');
// The daemon flags that make the CLI's configuration equal upstream's NewFakeProxier.
const FLAGS = [
  '--hostname-override',
  'test-node',
  '--cluster-cidr',
  '10.0.0.0/8',
  '--nfacct',
  '--random-fully=false',
];

const tmp = mkdtempSync(join(tmpdir(), 'kpts-render-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(
  cmd: typeof renderCommand,
  argv: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await cmd(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    ...(stdin !== undefined ? { stdin: [stdin] } : {}),
  });
  return { code, stdout, stderr };
}

describe('render', () => {
  it('prints what the renderer gives for the same cluster, applied as a full sync on an empty node', async () => {
    const { code, stdout, stderr } = await run(renderCommand, ['-f', YAML, ...FLAGS]);
    expect(code, stderr).toBe(0);
    const direct = renderRules(
      overallIPTablesRulesState(),
      fakeProxierConfig('IPv4', { hasRandomFully: false }),
      {
        full: true,
      },
    );
    expect(stdout).toBe(`# kube-proxy-ts render: IPv4\n${await tablesAfterFullSync(direct, 'IPv4')}`);
    // The upstream dump's characteristic lines are there, as are the built-in jumps.
    expect(stdout).toContain(
      '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN',
    );
    expect(stdout).toContain(
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
  });

  it('reports ignored kinds and invalid objects (file, namespace/name, reason) on stderr and skips them', async () => {
    const { code, stdout, stderr } = await run(renderCommand, ['-f', YAML, ...FLAGS]);
    expect(code).toBe(0);
    expect(stderr).toContain(`${YAML}: ignoring Deployment ns1/web`);
    expect(stderr).toMatch(
      new RegExp(`${YAML}: invalid Service ns7/broken: spec\\.ports\\.0\\.port: .*; skipped`),
    );
    expect(stdout).not.toContain('ns7/broken');
  });

  it('gives the same output for the List JSON (objects in reverse order) and for a shuffled YAML', async () => {
    const yaml = await run(renderCommand, ['-f', YAML, ...FLAGS]);
    const list = await run(renderCommand, ['-f', LIST, ...FLAGS]);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe(yaml.stdout);
    const docs = parseDocuments(readFileSync(YAML, 'utf8'));
    const shuffled = join(tmp, 'shuffled.json');
    writeFileSync(
      shuffled,
      docs
        .map((d) => JSON.stringify(d))
        .reverse()
        .join('\n---\n'),
    );
    expect((await run(renderCommand, ['-f', shuffled, ...FLAGS])).stdout).toBe(yaml.stdout);
  });

  it('is stable across runs', async () => {
    const outs = await Promise.all(
      [1, 2, 3].map(() => run(renderCommand, ['-f', YAML, '-f', LIST, ...FLAGS])),
    );
    expect(new Set(outs.map((o) => o.stdout)).size).toBe(1);
  });

  it('reads stdin for -f -', async () => {
    const viaStdin = await run(renderCommand, ['-f', '-', ...FLAGS], readFileSync(LIST, 'utf8'));
    expect(viaStdin.stdout).toBe((await run(renderCommand, ['-f', LIST, ...FLAGS])).stdout);
  });

  it('renders both families of a dual-stack cluster, IPv4 first, and --ip-family picks one', async () => {
    const file = join(tmp, 'dual.yaml');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v4, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-v6, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
endpoints: [{addresses: ["fd00:244::5"], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
`,
    );
    const flags = ['--hostname-override', 'n1', '--cluster-cidr', '10.244.0.0/16,fd00:244::/64'];
    const both = await run(renderCommand, ['-f', file, ...flags]);
    expect(both.code, both.stderr).toBe(0);
    const sections = splitFamilies(both.stdout);
    expect(sections.map((s) => s.family)).toEqual(['IPv4', 'IPv6']);
    expect(sections[0]!.text).toContain('--to-destination 10.244.1.5:8080');
    expect(sections[1]!.text).toContain('--to-destination [fd00:244::5]:8080');
    expect(sections[1]!.text).toContain('! -s fd00:244::/64 -j KUBE-MARK-MASQ');
    expect(sections[1]!.text).not.toContain('KUBE-FIREWALL -m comment');
    const v6 = await run(renderCommand, ['-f', file, ...flags, '--ip-family', 'IPv6']);
    expect(v6.stdout).toBe(`# kube-proxy-ts render: IPv6${sections[1]!.text}`);
  });

  it('applies the daemon flags: --masquerade-all, --iptables-masquerade-bit', async () => {
    const { stdout } = await run(renderCommand, [
      '-f',
      YAML,
      ...FLAGS,
      '--masquerade-all',
      '--iptables-masquerade-bit',
      '5',
    ]);
    expect(stdout).toContain(
      '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ',
    );
    expect(stdout).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000020');
  });

  it('fails with a usage error (exit 2) without input or with a bad flag, and exit 1 for a missing file', async () => {
    expect((await run(renderCommand, FLAGS)).code).toBe(2);
    const bad = await run(renderCommand, ['-f', YAML, '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--no-such-flag');
    const missing = await run(renderCommand, ['-f', join(tmp, 'nope.yaml'), ...FLAGS]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.yaml');
  });
});

describe('trace', () => {
  const packet = ['--src', '203.0.113.2', '--dst', '5.6.7.8', '--dport', '80'];

  it('prints the outcome and each rule matched', async () => {
    const { code, stdout, stderr } = await run(traceCommand, [...packet, '-f', YAML, ...FLAGS]);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('packet: tcp 203.0.113.2 -> 5.6.7.8:80, from outside (IPv4)');
    expect(stdout).toContain('outcome: DNAT to 10.180.0.3:80 (100.00%); masqueraded');
    expect(stdout).toContain(
      'nat KUBE-SERVICES #9: -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C',
    );
  });

  it('--output json carries the paths and the summary; a blocked client is dropped', async () => {
    const { code, stdout } = await run(traceCommand, [
      '--src',
      '203.0.113.130',
      '--dst',
      '5.6.7.8',
      '--dport',
      '80',
      '-o',
      'json',
      '-f',
      LIST,
      ...FLAGS,
    ]);
    expect(code).toBe(0);
    const json = JSON.parse(stdout);
    expect(json.summary).toMatchObject({ output: 'DROP', kind: 'drop', masquerade: false });
    expect(json.paths[0].steps.at(-1)).toMatchObject({
      table: 'filter',
      chain: 'KUBE-PROXY-FIREWALL',
      action: 'DROP',
    });
  });

  it('guesses where the packet enters from the source: pod (cluster CIDR), node (its IP), outside', async () => {
    const at = async (src: string) =>
      JSON.parse(
        (
          await run(traceCommand, [
            '--src',
            src,
            '--dst',
            '172.30.0.41',
            '--dport',
            '80',
            '-o',
            'json',
            '-f',
            YAML,
            ...FLAGS,
          ])
        ).stdout,
      );
    expect((await at('10.0.0.2')).packet.entry).toBe('pod');
    expect((await at('192.168.0.2')).packet.entry).toBe('node');
    expect((await at('203.0.113.2')).packet.entry).toBe('outside');
    expect((await at('10.0.0.2')).summary).toMatchObject({ output: '10.180.0.1:80', masquerade: false });
    expect((await at('203.0.113.2')).summary).toMatchObject({ output: '10.180.0.1:80', masquerade: true });
  });

  it('traces an iptables-save dump (render output, from a file or stdin) as it traces -f', async () => {
    const rendered = (await run(renderCommand, ['-f', YAML, ...FLAGS])).stdout;
    const dump = join(tmp, 'dump.txt');
    writeFileSync(dump, rendered);
    const args = [
      '--src',
      '203.0.113.2',
      '--dst',
      '192.168.0.2',
      '--dport',
      '3003',
      '-o',
      'json',
      '--node-ip',
      '192.168.0.2',
    ];
    const fromFiles = JSON.parse((await run(traceCommand, [...args, '-f', YAML, ...FLAGS])).stdout);
    const fromDump = JSON.parse((await run(traceCommand, [...args, '--iptables-save', dump])).stdout);
    const fromStdin = JSON.parse(
      (await run(traceCommand, [...args, '--iptables-save', '-'], rendered)).stdout,
    );
    expect(fromFiles.summary).toMatchObject({ output: '10.180.0.3:80', masquerade: true });
    expect(fromDump.summary).toEqual(fromFiles.summary);
    expect(fromStdin.paths).toEqual(fromFiles.paths);
  });

  it('fails with usage errors for missing or bad packet flags', async () => {
    expect((await run(traceCommand, ['--src', '10.0.0.2', '-f', YAML])).code).toBe(2);
    const bad = await run(traceCommand, [...packet, '--protocol', 'icmp', '-f', YAML]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--protocol');
    const both = await run(traceCommand, [...packet, '-f', YAML, '--iptables-save', YAML]);
    expect(both.code).toBe(2);
  });
});
