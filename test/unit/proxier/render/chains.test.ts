import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chainHash,
  endpointChainName,
  isServiceChain,
  servicePortChainNames,
} from '../../../../proxier/chains.ts';
import type { Protocol, ServicePortName } from '../../../../proxier/types.ts';

const spn = (namespace: string, name: string, port: string, protocol: Protocol = 'TCP'): ServicePortName => ({
  namespace,
  name,
  port,
  protocol,
});

describe('servicePortChainNames', () => {
  // UPSTREAM-REFERENCE 1.4 worked examples, all verified against upstream's expected outputs.
  it.each([
    [spn('ns1', 'svc1', 'p80'), 'XPGD46QRK7WJZT7O'],
    [spn('ns2', 'svc2', 'p80'), 'GNZBNJ2PO5MGZ6GT'],
    [spn('ns2', 'svc2', 'p8080'), '2VJB64SDSIJUP5T6'],
    [spn('default', 'kubernetes', 'https'), 'NPX46M4PTMTKRN6Y'],
    [spn('kube-system', 'kube-dns', 'dns', 'UDP'), 'TCOU7JCQXEZGVUNU'],
    [spn('kube-system', 'kube-dns', 'dns-tcp'), 'ERIFXISQEP7F7OF4'],
    [spn('ns1', 'svc1', ''), 'AQI2S6QIMU7PVVRP'],
    [spn('ns3', 'svc3', 'p80'), 'X27LE4BHSL4DOUIK'],
    [spn('ns4', 'svc4', 'p80'), '4SW47YFZTEDKD3PK'],
    [spn('ns5', 'svc5', 'p80'), 'NUKIZ6OKUXPJNT4C'],
  ])('%o hashes to %s', (name, hash) => {
    expect(servicePortChainNames(name)).toEqual({
      svc: `KUBE-SVC-${hash}`,
      svl: `KUBE-SVL-${hash}`,
      ext: `KUBE-EXT-${hash}`,
      fw: `KUBE-FW-${hash}`,
    });
  });

  it('separates protocols of the same port', () => {
    expect(servicePortChainNames(spn('ns', 'dns', 'p53', 'UDP')).svc).not.toBe(
      servicePortChainNames(spn('ns', 'dns', 'p53', 'TCP')).svc,
    );
  });
});

describe('endpointChainName', () => {
  it.each([
    [spn('ns1', 'svc1', 'p80'), '10.180.0.1:80', 'KUBE-SEP-SXIVWICOYRO3J4NJ'],
    [spn('ns1', 'svc1', 'p80'), '[ff06::c1]:80', 'KUBE-SEP-LIGRYQQLSZN4UWQ5'],
    [spn('ns1', 'svc1', 'p80'), '[ff06::c2]:80', 'KUBE-SEP-XJJ5QXWGJG344QDZ'],
    [spn('ns1', 'svc1', 'p80'), '10.180.2.1:80', 'KUBE-SEP-ZX7GRIZKSNUQ3LAJ'],
    [spn('ns5', 'svc5', 'p80'), '10.180.0.3:80', 'KUBE-SEP-I77PXRDZVX7PMWMN'],
    [spn('ns2', 'svc2', 'p8080'), '10.0.2.1:8080', 'KUBE-SEP-UHEGFW77JX3KXTOV'],
    [spn('ns1', 'svc1', 'p80'), '10.0.0.0:80', 'KUBE-SEP-DKGQUZGBKLTPAR56'],
    [spn('ns3', 'svc3', 'p8081'), '203.0.113.4:8081', 'KUBE-SEP-RUVVH7YV3PHQBDOS'],
    [spn('ns4', 'svc4', 'p8082'), '10.4.0.1:8082', 'KUBE-SEP-SU5STNODRYEWJAUF'],
  ])('%o + %s is %s', (name, endpoint, chain) => {
    expect(endpointChainName(name, name.protocol, endpoint)).toBe(chain);
    expect(chain.length).toBeLessThanOrEqual(28);
  });

  it('large-cluster test service ns4/svc4:p8082 has the SVC chain upstream deletes', () => {
    expect(servicePortChainNames(spn('ns4', 'svc4', 'p8082')).svc).toBe('KUBE-SVC-EBDQOQU5SJFXRIL3');
  });
});

describe('chainHash', () => {
  it('is the first 16 characters of RFC 4648 base32 of SHA-256', () => {
    // Cross-check the encoder against a plain bit-by-bit encoding for many inputs.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    for (let i = 0; i < 200; i++) {
      const input = `ns${i}/svc${i * 7}:p${i}tcp`;
      const digest = createHash('sha256').update(input).digest();
      const bitString = [...digest].map((b) => b.toString(2).padStart(8, '0')).join('');
      let expected = '';
      for (let c = 0; c < 16; c++)
        expected += alphabet[Number.parseInt(bitString.slice(c * 5, c * 5 + 5), 2)];
      expect(chainHash(input)).toBe(expected);
    }
  });

  // chainHash has its own SHA-256: lengths around the 64-byte block and padding boundaries,
  // several blocks, and characters that take 2 to 4 bytes in UTF-8 are where one goes wrong.
  it.each([0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 121, 128, 300])(
    'agrees with node:crypto on a %i-byte input',
    (len) => {
      const input = Array.from({ length: len }, (_, i) => 'abcdefghij/:.0123456789'[i % 23]).join('');
      const prefix = createHash('sha256').update(input).digest().subarray(0, 10);
      expect(chainHash(input)).toBe(base32(prefix));
    },
  );

  it.each(['ü', 'ns/svc:pörttcp', '名前空間/サービス', '😀'.repeat(20), 'a\u0000b'])(
    'agrees with node:crypto on %j (UTF-8)',
    (input) => {
      const prefix = createHash('sha256').update(input, 'utf8').digest().subarray(0, 10);
      expect(chainHash(input)).toBe(base32(prefix));
    },
  );
});

/** RFC 4648 base32 of 10 bytes (exactly 16 characters), bit by bit. */
function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
  let out = '';
  for (let c = 0; c < bits.length / 5; c++) out += alphabet[Number.parseInt(bits.slice(c * 5, c * 5 + 5), 2)];
  return out;
}

describe('isServiceChain', () => {
  it.each(['KUBE-SVC-XPGD46QRK7WJZT7O', 'KUBE-SVL-X', 'KUBE-SEP-Y', 'KUBE-FW-Z', 'KUBE-EXT-W'])(
    '%s is ours',
    (c) => {
      expect(isServiceChain(c)).toBe(true);
    },
  );
  it.each([
    'KUBE-SERVICES',
    'KUBE-NODEPORTS',
    'KUBE-MARK-MASQ',
    'KUBE-XLB-OLD',
    'KUBE-MARK-DROP',
    'CILIUM-SVC-1',
    'kube-svc-x',
  ])('%s is not a service chain', (c) => {
    expect(isServiceChain(c)).toBe(false);
  });
});
