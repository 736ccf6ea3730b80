/** The store rules on their own, without a server. */
import { describe, expect, it } from 'vitest';
import type { Service } from '../../../pkg/k8s/schemas.ts';
import { serviceSchema } from '../../../pkg/k8s/schemas.ts';
import {
  applyDelete,
  applyList,
  applyUpsert,
  displayName,
  objectKey,
  type Store,
} from '../../../pkg/k8s/store.ts';

const svc = (name: string, rv: string | undefined, clusterIP = '10.0.0.1') => ({
  metadata: { namespace: 'ns', name, ...(rv !== undefined ? { resourceVersion: rv } : {}) },
  spec: { clusterIP, ports: [{ port: 80 }] },
});
const summary = (events: ReturnType<typeof applyUpsert<Service>>) =>
  events.map((e): string => {
    switch (e.type) {
      case 'add':
        return `add ${e.obj.metadata.name}@${e.obj.metadata.resourceVersion}`;
      case 'update':
        return `update ${e.oldObj.metadata.resourceVersion}->${e.newObj.metadata.resourceVersion}`;
      case 'delete':
        return `delete ${e.obj.metadata.name}@${e.obj.metadata.resourceVersion}`;
      default:
        return `invalid ${e.namespacedName}`;
    }
  });

describe('keys', () => {
  it('names namespaced and cluster-scoped objects, and objects that are not objects', () => {
    expect(objectKey(svc('a', '1'))).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node1' } })).toBe('node1');
    expect(objectKey({ metadata: { namespace: 'ns' } })).toBeUndefined();
    expect(objectKey(null)).toBeUndefined();
    expect(displayName([1, 2])).toBe('<no name>');
    expect(displayName({ metadata: { namespace: 'ns', name: 7 } })).toBe('ns/<no name>');
  });
});

describe('applyUpsert / applyDelete', () => {
  it('adds, updates on a new version only, and treats a missing version as always new', () => {
    const store: Store<Service> = new Map();
    expect(summary(applyUpsert(store, svc('a', '1'), serviceSchema))).toEqual(['add a@1']);
    expect(summary(applyUpsert(store, svc('a', '1'), serviceSchema))).toEqual([]);
    expect(summary(applyUpsert(store, svc('a', '2'), serviceSchema))).toEqual(['update 1->2']);
    const noRV: Store<Service> = new Map();
    applyUpsert(noRV, svc('b', undefined), serviceSchema);
    expect(summary(applyUpsert(noRV, svc('b', undefined), serviceSchema))).toEqual([
      'update undefined->undefined',
    ]);
  });

  it('leaves the stored object alone on an invalid version and deletes with the stored one', () => {
    const store: Store<Service> = new Map();
    applyUpsert(store, svc('a', '1', '10.0.0.1'), serviceSchema);
    expect(summary(applyUpsert(store, svc('a', '2', 'bogus'), serviceSchema))).toEqual(['invalid ns/a']);
    expect(store.get('ns/a')?.obj.spec.clusterIP).toBe('10.0.0.1');
    expect(summary(applyDelete(store, svc('a', '3', 'bogus')))).toEqual(['delete a@1']);
    expect(summary(applyDelete(store, svc('a', '4')))).toEqual([]);
  });
});

describe('applyList', () => {
  it('deletes what is gone, keeps invalid-but-present objects, adds and updates the rest', () => {
    const store: Store<Service> = new Map();
    applyList(
      store,
      [svc('gone', '1'), svc('kept', '2'), svc('broken', '3'), svc('same', '4')],
      serviceSchema,
    );
    const events = applyList(
      store,
      [svc('kept', '12'), svc('broken', '13', '1.2.3'), svc('same', '4'), svc('new', '15')],
      serviceSchema,
    );
    expect(summary(events)).toEqual(['delete gone@1', 'update 2->12', 'invalid ns/broken', 'add new@15']);
    expect([...store.keys()].sort()).toEqual(['ns/broken', 'ns/kept', 'ns/new', 'ns/same']);
    expect(store.get('ns/broken')?.resourceVersion).toBe('3');
  });
});
