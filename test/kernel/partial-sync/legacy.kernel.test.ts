/** Partial-vs-full equivalence on the legacy backend (see suite.ts). */
import { partialSyncSuite } from './suite.ts';

partialSyncSuite('legacy');
