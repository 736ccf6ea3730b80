/**
 * Runs the development API server on its own:
 *
 *   node pkg/apiserver/main.ts --listen 127.0.0.1:0 --kubeconfig-out /tmp/kubeconfig
 *
 * Prints the URL it listens on (one line on stdout), writes the kubeconfig if asked, and stops
 * on SIGTERM or SIGINT. The CLI's `apiserver` subcommand wraps the same library.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../log/logger.ts';
import { createApiServer } from './server.ts';

export interface MainArgs {
  readonly listen: string;
  readonly kubeconfigOut: string | undefined;
  readonly serviceCIDRs: string[] | undefined;
  readonly verbosity: number;
}

export function parseMainArgs(argv: string[]): MainArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', default: '127.0.0.1:0' },
      'kubeconfig-out': { type: 'string' },
      'service-cluster-ip-range': { type: 'string' },
      v: { type: 'string', default: '0' },
    },
    strict: true,
  });
  return {
    listen: values.listen,
    kubeconfigOut: values['kubeconfig-out'],
    serviceCIDRs: values['service-cluster-ip-range']?.split(',').map((s) => s.trim()),
    verbosity: Number(values.v) || 0,
  };
}

export async function main(argv: string[]): Promise<void> {
  const args = parseMainArgs(argv);
  const logger = createLogger({ verbosity: args.verbosity, format: 'text' });
  const server = createApiServer({
    listen: args.listen,
    logger,
    ...(args.serviceCIDRs ? { serviceCIDRs: args.serviceCIDRs } : {}),
  });
  const { url } = await server.start();
  if (args.kubeconfigOut) await server.writeKubeconfig(args.kubeconfigOut);
  process.stdout.write(`${url}\n`);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  await server.stop();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`apiserver: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
