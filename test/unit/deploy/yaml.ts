/** Reading Kubernetes YAML in tests both as client-node types and as plain data. */
import { loadYaml } from '@kubernetes/client-node';

/**
 * Each YAML document as plain data with every field kept: client-node's loaders deserialize known
 * kinds into typed models that drop unknown fields, so each document is nested under a kind the
 * library does not know, which it returns as it is.
 */
export function rawDocuments(text: string): unknown[] {
  return text
    .split(/^---\s*$/m)
    .filter((doc) => doc.replace(/#.*$/gm, '').trim() !== '')
    .map((doc) => {
      const indented = doc
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n');
      return loadYaml<{ doc: unknown }>(`apiVersion: raw.test/v1\nkind: Raw\ndoc:\n${indented}\n`).doc;
    });
}
