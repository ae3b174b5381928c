// One key style for machine-readable output (--output-format json|yaml): kebab-case, the style of
// CK8s's `k8s status` (node-name, node-ready). k8sd's API keeps JavaScript field names (camelCase);
// the CLI says them in kebab-case when it renders. Keys that are data, not field names (component
// names, CA names), and the Canonical Kubernetes setting names of `k8s get`/`k8s set` stay as they are.

/** Fields whose value is a map keyed by data (a component or CA name), not by field names. */
const DATA_KEYED = new Set(['versions', 'goModules', 'cas']);

/** A JavaScript field name (camelCase) in kebab-case: writeKeyId → write-key-id, peerURLs → peer-urls. */
export function kebabKey(key: string): string {
  if (!/^[a-z][a-zA-Z0-9]*$/.test(key)) return key;
  // Words: lower-case runs, capitalised words, and acronyms with an optional plural s (URLs, SANs).
  return key.match(/[a-z0-9]+|[A-Z]{2,}s?(?=[A-Z]|$)|[A-Z][a-z0-9]*/g)!.join('-').toLowerCase();
}

/** `value` with every field name in kebab-case, at every depth. */
export function kebabKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(kebabKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [kebabKey(k), DATA_KEYED.has(k) && v !== null && typeof v === 'object' && !Array.isArray(v) ? v : kebabKeys(v)]),
  );
}
