/**
 * Writes the full-sync payload of a synthetic cluster to stdout, for restoring it by hand
 * (`node hack/bench/dump-payload.ts 10000 5 > /tmp/p.txt`).
 */
import { createIncrementalRenderer } from '../../proxier/incremental.ts';
import { benchRenderConfig, loadSyntheticNode } from './sync.ts';

const services = Number(process.argv[2] ?? 1000);
const perService = Number(process.argv[3] ?? 5);
const { state } = loadSyntheticNode(services, perService);
const r = createIncrementalRenderer().render(state, benchRenderConfig(), { full: true });
process.stdout.write(r.payload);
