// Join tokens, issued, listed and revoked on the local API (control-plane nodes only; routes/membership/):
//   POST /1.0/k8sd/cluster/tokens         {name?, worker?, expiresInSeconds?, address?} → the token, once
//   GET  /1.0/k8sd/cluster/tokens         open tokens (names, roles, expiry; never secrets)
//   POST /1.0/k8sd/cluster/tokens/revoke  {name}
import { ApiError, Request } from '../http.js';
import type { MembershipContext } from './context.js';
import { kubernetesNodeExists } from './kube-clients.js';
import { joinHostPort } from '../cluster/peer.js';
import { controlPlanePeers } from './join-server.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { checkAddressForm, checkNodeName, NodeAdmissionError } from './admission.js';
import { JoinTokenRecord } from './store.js';
import { encodeToken, JoinEndpoint, newSecret } from './token.js';
import { local, type IssuedToken, type TokenInfo } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';

export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600;
const MIN_TTL_SECONDS = 1;
const MAX_TTL_SECONDS = 365 * 24 * 3600;
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export async function createToken(m: MembershipContext, req: Request): Promise<IssuedToken> {
  const self = m.d.requireControlPlane();
  const body = parseRequest(local.issueToken, req.body);
  const role = body.worker ? 'worker' : 'control-plane';
  const ttl = body.expiresInSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isFinite(ttl) || ttl < MIN_TTL_SECONDS || ttl > MAX_TTL_SECONDS) {
    throw new ApiError(400, `--expires-in must be between 1s and 365d (got ${ttl} s)`);
  }
  let name = body.name?.toLowerCase();
  const bound = Boolean(name);
  if (!name) {
    if (role === 'control-plane') throw new ApiError(400, 'a control-plane token needs the name of the node that will join: k8s get-join-token <node-name>');
    name = `worker-${(await m.d.crypto.randomBytes(4)).toString('hex')}`;
  }
  if (!NAME_RE.test(name) || name.length > 63) throw new ApiError(400, `invalid node name "${name}": use lower-case letters, digits, "-" and "." (at most 63)`);
  const store = m.store();
  const config = await store.state.getConfig();
  let address: string | undefined;
  try {
    if (bound) checkNodeName(name, { clusterDomain: config?.clusterDomain ?? 'cluster.local', extraSans: config?.extraSans ?? [] });
    if (body.address !== undefined) address = checkAddressForm(String(body.address));
  } catch (err) {
    if (err instanceof NodeAdmissionError) throw new ApiError(400, err.key === 'node.address' ? `--address: ${err.message}` : err.message);
    throw err;
  }
  if (bound) {
    if (await store.member(name)) throw new ApiError(409, `node "${name}" is already a member of this cluster; remove it first with "k8s remove-node ${name}"`);
    if (await kubernetesNodeExists(m.d, name)) throw new ApiError(409, `a Kubernetes node named "${name}" already exists; delete it or pick another name`);
  }
  const existing = await store.token(name);
  if (existing) {
    if (new Date(existing.record.expiresAt).getTime() > Date.now()) {
      throw new ApiError(409, `an open join token for "${name}" already exists (expires ${existing.record.expiresAt}); k8sd keeps only a hash of it, so it cannot be shown again: revoke it with "k8s revoke-join-token ${name}" and ask again`);
    }
    await store.consumeToken(name, existing.raw);
  }
  const peers = await controlPlanePeers(m, store);
  const endpoints: JoinEndpoint[] = [
    // This node first: it issued the token and is known to be up.
    { address: joinHostPort(self.address, K8SD_CLUSTER_PORT), fingerprint: m.d.identity.fingerprint },
    ...peers.filter((p) => p.name !== self.name).map((p) => ({ address: joinHostPort(p.address, p.clusterPort), fingerprint: p.fingerprint })),
  ];
  const { secret, secretHash } = await newSecret(m.d.crypto);
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttl * 1000);
  const record: JoinTokenRecord = { name, role, bound, secretHash, createdAt: now.toISOString(), expiresAt: expiresAt.toISOString(), issuedBy: self.name, ...(address ? { address } : {}) };
  if (!(await store.createToken(record))) throw new ApiError(409, `another join token for "${name}" was created at the same moment; revoke it and ask again`);
  const token = await encodeToken(m.d.crypto, { name, role, bound, secret, endpoints, expiresAt });
  m.log.info('issued a join token', { tokenName: name, role, expiresAt: record.expiresAt, ...(address ? { address } : {}) });
  return { name, role, token, expiresAt: record.expiresAt };
}

export function tokenInfo(r: JoinTokenRecord, now = Date.now()): TokenInfo {
  return {
    name: r.name,
    role: r.role,
    bound: r.bound ?? true,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    expired: new Date(r.expiresAt).getTime() <= now,
    ...(r.issuedBy ? { issuedBy: r.issuedBy } : {}),
    ...(r.address ? { address: r.address } : {}),
  };
}

export async function listTokens(m: MembershipContext): Promise<{ tokens: TokenInfo[] }> {
  m.d.requireControlPlane();
  const tokens = (await m.store().tokens()).map((r) => tokenInfo(r)).sort((a, b) => a.name.localeCompare(b.name));
  return { tokens };
}

export async function revokeToken(m: MembershipContext, req: Request): Promise<{ revoked: string }> {
  m.d.requireControlPlane();
  const { name } = parseRequest(local.revokeToken, req.body);
  if (typeof name !== 'string' || !name) throw new ApiError(400, 'give the name of the token to revoke (see "k8s list-join-tokens")');
  if (!(await m.store().revokeToken(name))) throw new ApiError(404, `there is no open join token named "${name}" (it may have been used already); see "k8s list-join-tokens"`);
  m.log.info('revoked a join token', { tokenName: name });
  return { revoked: name };
}

/** Drops tokens that expired more than an hour ago (kept briefly so "list" can show them as expired). */
export async function purgeExpiredTokens(m: MembershipContext): Promise<number> {
  const store = m.store();
  let n = 0;
  for (const t of await store.tokens()) {
    if (new Date(t.expiresAt).getTime() < Date.now() - 3600_000) {
      const cur = await store.token(t.name);
      if (cur && (await store.consumeToken(t.name, cur.raw))) n++;
    }
  }
  return n;
}
