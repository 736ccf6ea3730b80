#!/usr/bin/env node
/**
 * kube-proxy-ts: `kube-proxy-ts [flags]` runs the proxy; the subcommands are tools around it.
 *
 *   kube-proxy-ts [flags]                  the daemon (upstream kube-proxy's flags)
 *   kube-proxy-ts render -f FILE [flags]   print the rules a full sync would write
 *   kube-proxy-ts trace ...                walk a packet through rendered or live rules
 *   kube-proxy-ts apiserver ...            the in-memory development API server
 */
import { main as apiserverMain } from '../../pkg/apiserver/main.ts';
import { daemonCommand, type Io } from './daemon.ts';
import { renderCommand } from './render.ts';
import { traceCommand } from './trace.ts';

async function dispatch(argv: string[], io: Io): Promise<number> {
  switch (argv[0]) {
    case 'apiserver':
      await apiserverMain(argv.slice(1));
      return 0;
    case 'render':
      return renderCommand(argv.slice(1), io);
    case 'trace':
      return traceCommand(argv.slice(1), io);
    default:
      return daemonCommand(argv, io);
  }
}

dispatch(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `kube-proxy-ts: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
