/** Partial-vs-full equivalence on the nft backend (see suite.ts). */
import { partialSyncSuite } from './suite.ts';

partialSyncSuite('nft');
