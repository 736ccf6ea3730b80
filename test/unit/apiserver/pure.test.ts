import { describe, expect, it } from 'vitest';
import { AllocationError, createIPAllocator, createPortAllocator } from '../../../pkg/apiserver/allocator.ts';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../../pkg/apiserver/patch.ts';
import { parseApiPath } from '../../../pkg/apiserver/routes.ts';
import { parseLabelSelector, SelectorError } from '../../../pkg/apiserver/selectors.ts';
import { parseListenAddress } from '../../../pkg/apiserver/server.ts';

describe('patches', () => {
  it('merge patch deletes keys with null and replaces lists', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { b: { c: null }, l: [3] })).toEqual({
      a: 1,
      b: { d: 3 },
      l: [3],
    });
  });

  it('JSON patch applies add, remove, move, copy and test in order', () => {
    const out = jsonPatch({ a: [1, 2], b: { c: 'x' } }, [
      { op: 'add', path: '/a/-', value: 3 },
      { op: 'remove', path: '/a/0' },
      { op: 'copy', from: '/b/c', path: '/d' },
      { op: 'move', from: '/b', path: '/e' },
      { op: 'test', path: '/d', value: 'x' },
    ]);
    expect(out).toEqual({ a: [2, 3], d: 'x', e: { c: 'x' } });
  });

  it('strategic merge patch merges Service ports by port and honours $patch: delete', () => {
    const target = {
      spec: {
        ports: [
          { port: 80, name: 'a' },
          { port: 53, name: 'b' },
        ],
        selector: { app: 'x', old: 'y' },
      },
    };
    const out = strategicMergePatch(target, {
      spec: {
        ports: [{ port: 80, targetPort: 8080 }, { port: 53, $patch: 'delete' }, { port: 443 }],
        selector: { old: null },
      },
    });
    expect(out).toEqual({
      spec: { ports: [{ port: 80, name: 'a', targetPort: 8080 }, { port: 443 }], selector: { app: 'x' } },
    });
  });
});

describe('allocators', () => {
  it('hands out IPv4 addresses next-fit, skipping the network and broadcast addresses', () => {
    const a = createIPAllocator('192.0.2.0/30');
    expect([a.allocateNext(), a.allocateNext()]).toEqual(['192.0.2.1', '192.0.2.2']);
    expect(() => a.allocateNext()).toThrow(AllocationError);
    a.release('192.0.2.1');
    expect(a.allocateNext()).toBe('192.0.2.1');
    expect(() => a.allocate('192.0.2.3')).toThrow(/not in the valid range/);
  });

  it('does not hand a released value straight back while others are free', () => {
    const p = createPortAllocator([30000, 30002]);
    const first = p.allocateNext();
    p.release(first);
    expect(p.allocateNext()).toBe(30001);
  });

  it('handles IPv6 ranges', () => {
    const a = createIPAllocator('fd00::/120');
    expect(a.allocateNext()).toBe('fd00::1');
    expect(a.allocate('fd00:0::00ff')).toBe('fd00::ff');
    expect(a.isAllocated('fd00::ff')).toBe(true);
  });
});

describe('paths, selectors, listen addresses', () => {
  it.each([
    ['/api/v1/services', { resource: 'services', namespace: undefined, name: undefined }],
    [
      '/api/v1/namespaces/ns1/services/a/status',
      { resource: 'services', namespace: 'ns1', name: 'a', subresource: 'status' },
    ],
    ['/api/v1/namespaces/ns1', { resource: 'namespaces', name: 'ns1', namespace: undefined }],
    ['/api/v1/namespaces/ns1/status', { resource: 'namespaces', name: 'ns1', subresource: 'status' }],
    ['/api/v1/watch/namespaces/ns1/services', { resource: 'services', namespace: 'ns1', watchPrefix: true }],
    [
      '/apis/discovery.k8s.io/v1/namespaces/x/endpointslices/s',
      { resource: 'endpointslices', namespace: 'x', name: 's' },
    ],
  ])('parses %s', (path, want) => {
    expect(parseApiPath(path)).toMatchObject(want);
  });

  it.each([
    ['/api/v1/endpointslices'],
    ['/apis/discovery.k8s.io/v1/services'],
    ['/api/v1/namespaces/x/nodes'],
    ['/api/v1/services/a/scale'],
  ])('refuses %s', (path) => {
    expect(parseApiPath(path)).toBeUndefined();
  });

  it('parses set-based label requirements and rejects bad keys', () => {
    expect(parseLabelSelector('a in (x, y),!b,c!=d')).toEqual([
      { key: 'a', operator: 'in', values: ['x', 'y'] },
      { key: 'b', operator: 'notexists', values: [] },
      { key: 'c', operator: 'notequals', values: ['d'] },
    ]);
    expect(() => parseLabelSelector('-bad=1')).toThrow(SelectorError);
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListenAddress('[::1]:6443')).toEqual({ host: '::1', port: 6443 });
    expect(() => parseListenAddress('localhost')).toThrow(/invalid listen address/);
  });
});
