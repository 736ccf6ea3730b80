import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerIgnoreExcludes, dockerInstructions, parseDockerfile, type Stage } from './dockerfile.ts';

const ROOT = join(import.meta.dirname, '../../..');
const DOCKERFILE = readFileSync(join(ROOT, 'hack/deploy/Dockerfile'), 'utf8');
// BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile; a .dockerignore there would be unused.
const IGNORE = readFileSync(join(ROOT, 'hack/deploy/Dockerfile.dockerignore'), 'utf8');
const LAUNCHER = 'hack/kube-proxy-ts.sh';

const stages = parseDockerfile(DOCKERFILE);
const build = stages.find((s) => s.name === 'build')!;
const runtime = stages.at(-1)!;

/** Every file under a repository path, relative to the repository root. */
function filesUnder(path: string): string[] {
  const abs = join(ROOT, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** Where a context file ends up in the runtime image (undefined if it is not copied there). */
function imagePathOf(stage: Stage, contextPath: string): string | undefined {
  const step = stage.copies.find((c) => c.from === undefined && c.sources.includes(contextPath));
  return step?.dest;
}

describe('Dockerfile parsing helpers', () => {
  it('joins continuation lines and drops comments', () => {
    expect(dockerInstructions('# c\nRUN a \\\n  && b\n\nCOPY x y\n')).toEqual([
      { keyword: 'RUN', args: 'a && b' },
      { keyword: 'COPY', args: 'x y' },
    ]);
  });

  it('resolves COPY destinations against WORKDIR and reads --from', () => {
    const [s] = parseDockerfile('FROM a AS b\nWORKDIR /x\nWORKDIR y\nCOPY --from=c /p ./q\n');
    expect(s).toMatchObject({
      name: 'b',
      workdir: '/x/y',
      copies: [{ from: 'c', sources: ['/p'], dest: '/x/y/q' }],
    });
  });

  it('applies ignore patterns as Docker does: last match wins, parents count, ! re-includes', () => {
    const ignore = '*\n!cmd\n!hack/run.sh\n**/*.test.ts\n';
    expect(dockerIgnoreExcludes(ignore, 'node_modules/x/index.js')).toBe(true);
    expect(dockerIgnoreExcludes(ignore, 'cmd/main.ts')).toBe(false);
    expect(dockerIgnoreExcludes(ignore, 'cmd/sub/main.test.ts')).toBe(true);
    expect(dockerIgnoreExcludes(ignore, 'hack/run.sh')).toBe(false);
    expect(dockerIgnoreExcludes(ignore, 'hack/other.sh')).toBe(true);
  });
});

describe('hack/deploy/Dockerfile', () => {
  it('builds on Node 24 (official bookworm-slim) in a build stage and a runtime stage', () => {
    expect(stages.map((s) => s.base)).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
    expect(build).toBeDefined();
    expect(runtime).not.toBe(build);
  });

  it('compiles with tsconfig.build.json and prunes dev dependencies in the build stage', () => {
    const run = build.runs.join('\n');
    expect(run).toMatch(/npm ci\b/);
    expect(run).toMatch(/typescript\/bin\/tsc -p tsconfig\.build\.json/);
    expect(run).toMatch(/npm prune --omit=dev/);
  });

  it('installs iptables, conntrack, iproute2 and kmod from Debian in the runtime stage', () => {
    const install = runtime.runs.find((r) => r.includes('apt-get install'));
    expect(install).toBeDefined();
    const words = install!.split(/\s+/);
    for (const pkg of ['iptables', 'conntrack', 'iproute2', 'kmod']) expect(words).toContain(pkg);
  });

  it('copies only paths that exist in the repository and that the ignore file lets through', () => {
    const sources = stages.flatMap((s) =>
      s.copies.filter((c) => c.from === undefined).flatMap((c) => c.sources),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), `${src} exists`).toBe(true);
      const sent = filesUnder(src).filter((f) => !dockerIgnoreExcludes(IGNORE, f));
      expect(sent.length, `${src} reaches the build context`).toBeGreaterThan(0);
    }
    // Every TypeScript source that tsconfig.build.json compiles is in the context.
    const compiled = ['cmd', 'pkg', 'proxier', 'conntrack']
      .flatMap(filesUnder)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(compiled.filter((f) => dockerIgnoreExcludes(IGNORE, f))).toEqual([]);
    for (const dir of ['cmd', 'pkg', 'proxier', 'conntrack']) {
      expect(sources).toContain(dir);
    }
  });

  it('keeps node_modules, dist, bin, .git and the tests out of the build context', () => {
    for (const p of [
      'node_modules/zod/package.json',
      'dist/cmd/x.js',
      'bin/kube-proxy-ts',
      '.git/HEAD',
      'test/unit/x.test.ts',
    ]) {
      expect(dockerIgnoreExcludes(IGNORE, p), p).toBe(true);
    }
  });

  it('copies dist, production node_modules and package.json from the build stage next to the launcher', () => {
    const launcher = imagePathOf(runtime, LAUNCHER);
    expect(launcher).toBeDefined();
    // hack/kube-proxy-ts.sh takes the directory above its own (symlinks resolved) as the root.
    const root = posix.dirname(posix.dirname(launcher!));
    const fromBuild = (what: string) =>
      runtime.copies.find(
        (c) => c.from === build.name && c.sources.includes(posix.join(build.workdir, what)),
      );
    expect(fromBuild('dist')?.dest).toBe(posix.join(root, 'dist'));
    expect(fromBuild('node_modules')?.dest).toBe(posix.join(root, 'node_modules'));
    expect(fromBuild('package.json')?.dest).toBe(posix.join(root, 'package.json'));
  });

  it('ENTRYPOINT is a symlink to the launcher', () => {
    const launcher = imagePathOf(runtime, LAUNCHER)!;
    expect(runtime.entrypoint).toEqual(['/usr/local/bin/kube-proxy-ts']);
    const link = runtime.runs.join('\n').match(/ln -s (\S+) (\S+)/);
    expect(link?.slice(1)).toEqual([launcher, runtime.entrypoint![0]]);
  });

  it('the build output path the launcher runs is where tsc puts cmd/kube-proxy-ts/main.ts', () => {
    expect(existsSync(join(ROOT, 'cmd/kube-proxy-ts/main.ts'))).toBe(true);
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { outDir: string; rootDir: string };
    };
    expect(tsconfig.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: '.' });
    expect(readFileSync(join(ROOT, LAUNCHER), 'utf8')).toContain('"$root/dist/cmd/kube-proxy-ts/main.js"');
    expect(build.runs.join('\n')).toContain('test -f dist/cmd/kube-proxy-ts/main.js');
  });
});

describe('the image layout, rebuilt in a temporary directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kpts-image-layout-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs dist/cmd/kube-proxy-ts/main.js as an ES module through the /usr/local/bin symlink', () => {
    const at = (p: string) => join(dir, p);
    const launcher = imagePathOf(runtime, LAUNCHER)!;
    const root = posix.dirname(posix.dirname(launcher));
    mkdirSync(dirname(at(launcher)), { recursive: true });
    copyFileSync(join(ROOT, LAUNCHER), at(launcher));
    // The package.json copied into the image makes dist/*.js ES modules.
    writeFileSync(at(posix.join(root, 'package.json')), readFileSync(join(ROOT, 'package.json')));
    const main = at(posix.join(root, 'dist/cmd/kube-proxy-ts/main.js'));
    mkdirSync(dirname(main), { recursive: true });
    writeFileSync(
      main,
      'console.log(JSON.stringify({ url: import.meta.url, args: process.argv.slice(2) }));\n',
    );
    const link = at(runtime.entrypoint![0]!);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(at(launcher), link);

    // The launcher prefers a system Node >= 22 and else the pinned one under node_modules; give it ours.
    const out = execFileSync('sh', [link, '--config=/var/lib/kube-proxy/config.conf', '-v', '2'], {
      encoding: 'utf8',
      env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` },
    });
    expect(JSON.parse(out)).toEqual({
      url: `file://${main}`,
      args: ['--config=/var/lib/kube-proxy/config.conf', '-v', '2'],
    });
  });
});
