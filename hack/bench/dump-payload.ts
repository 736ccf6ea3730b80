/**
 * Writes the full-sync payload of a synthetic cluster to stdout, for restoring it by hand
 * (`node hack/bench/dump-payload.ts 10000 5 > /tmp/p.txt`).
 */
import { createEndpointsChangeTracker } from '../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../proxier/endpointsmap.ts';
import { createIncrementalRenderer } from '../../proxier/incremental.ts';
import { createServiceChangeTracker } from '../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../proxier/servicemap.ts';
import { BENCH_NODE_NAME, benchRenderConfig } from './sync.ts';
import { createSyntheticCluster, parseEndpointSlice, parseService, serviceObject } from './synthetic.ts';

const services = Number(process.argv[2] ?? 1000);
const perService = Number(process.argv[3] ?? 5);
const cluster = createSyntheticCluster(services, perService);
const svcTracker = createServiceChangeTracker('IPv4');
const epTracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: BENCH_NODE_NAME });
const serviceMap = createServiceMap();
const endpointsMap = createEndpointsMap();
for (const i of cluster.serviceIndexes()) {
  svcTracker.update(undefined, parseService(serviceObject(i)));
  epTracker.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
}
serviceMap.update(svcTracker);
endpointsMap.update(epTracker);
const r = createIncrementalRenderer().render(
  { services: serviceMap.ports, endpoints: endpointsMap.endpoints },
  benchRenderConfig(),
  { full: true },
);
process.stdout.write(r.payload);
