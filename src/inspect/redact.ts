// The second line of defence of `k8s inspect`: the bundle is built only from files and API views
// that hold no secret (the first line), and every text goes through redact() before it is written,
// in case a log line or an argument carries one anyway.
import { TOKEN_PREFIX } from '../k8sd/membership/token.js';

const REDACTED = '[REDACTED]';

interface Rule {
  what: string;
  pattern: RegExp;
  replace: string | ((match: string, ...groups: string[]) => string);
}

/** What is scrubbed, in order; listed in the bundle's manifest. */
export const REDACTION_RULES: readonly Rule[] = [
  { what: 'PEM private key blocks', pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, replace: `${REDACTED} private key` },
  { what: 'k8sd join tokens', pattern: new RegExp(`${TOKEN_PREFIX}[A-Za-z0-9._~+/=-]+`, 'g'), replace: `${TOKEN_PREFIX}${REDACTED}` },
  { what: 'kubeconfig and YAML credential fields', pattern: /\b(client-key-data|token|password|client-key|secret|secretKey|tokenSecret)(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, replace: (_m, k: string, sep: string) => `${k}${sep}${REDACTED}` },
  { what: 'HTTP bearer and basic credentials', pattern: /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, replace: (_m, k: string) => `${k} ${REDACTED}` },
  { what: 'JSON Web Tokens (service-account tokens)', pattern: /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, replace: `${REDACTED} jwt` },
  { what: 'Kubernetes bootstrap tokens', pattern: /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g, replace: `${REDACTED} bootstrap token` },
  { what: '--token and --*-key-data style flags', pattern: /(--[a-z-]*(?:token|password|key-data)[a-z-]*=)\S+/gi, replace: (_m, k: string) => `${k}${REDACTED}` },
];

export function redact(text: string): string {
  let out = text;
  for (const r of REDACTION_RULES) out = out.replace(r.pattern, r.replace as (substring: string, ...args: string[]) => string);
  return out;
}
