// The joining side: `k8s join-cluster <token>` → POST /1.0/k8sd/cluster/join on the local API.
// Everything that can be checked locally is checked before anything is written or sent:
// the token's format, checksum and expiry, the node name and address, the join file. The
// control plane is contacted over a connection pinned to the fingerprint in the token; only
// then is the secret sent. The join itself is a flow (flows/join.ts) whose steps roll back on
// failure (the cluster side included: an aborted control-plane join removes its etcd member). A
// token that got a reply with certificates is spent even when a later step fails: ask for a new one.
import { ServerResponse } from 'node:http';
import { canonicalIp, defaultNodeAddress } from '../../config/net.js';
import { JoinConfig, parseJoinYaml } from '../../config/join.js';
import { streamProgress } from '../cluster/progress.js';
import { join, JoinClusterClient, JoinEvent, JoinParams } from '../flows/join.js';
import { ApiError, Request } from '../http.js';
import { local, peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { checkAddressForm, NodeAdmissionError } from './admission.js';
import type { MembershipContext } from './context.js';
import { JoinRequestBody } from './join-server.js';
import { PeerApiError, PeerIdentityError, peerRequest, PeerTarget } from '../cluster/peer.js';
import { decodeToken, JoinToken, TokenExpiredError, TokenFormatError } from './token.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type { JoinParams };

/** Validates a join request completely; throws ApiError(400) with the reason. Writes nothing. */
export async function parseJoinRequest(m: MembershipContext, body: { token?: string; name?: string; address?: string; config?: string; timeoutSeconds?: number }): Promise<JoinParams> {
  if (typeof body.token !== 'string' || !body.token) throw new ApiError(400, 'a join token is required');
  let token: JoinToken;
  try {
    token = await decodeToken(m.d.crypto, body.token);
  } catch (err) {
    if (err instanceof TokenFormatError || err instanceof TokenExpiredError) throw new ApiError(400, err.message);
    throw err;
  }
  const name = (body.name || (token.bound ? token.name : m.d.host.hostname())).toLowerCase();
  if (!NAME_RE.test(name) || name.length > 63) throw new ApiError(400, `invalid node name "${name}": use lower-case letters, digits, "-" and "."`);
  if (token.bound && name !== token.name) {
    throw new ApiError(400, `this join token is for node "${token.name}", not "${name}"; join with --name ${token.name}, or ask for a token for "${name}"`);
  }
  const given = body.address ? body.address.replace(/\/\d+$/, '') : defaultNodeAddress();
  const address = canonicalIp(given);
  if (address === undefined) throw new ApiError(400, `invalid node address "${given}": give an IP address (or CIDR) of this host`);
  try {
    checkAddressForm(address);
  } catch (err) {
    if (err instanceof NodeAdmissionError) throw new ApiError(400, `invalid node address "${given}": ${err.message}`);
    throw err;
  }
  let config: JoinConfig;
  try {
    config = parseJoinYaml(body.config ?? '', token.role);
  } catch (err) {
    throw new ApiError(400, (err as Error).message);
  }
  if (config.fips && !m.d.fips.enabled) {
    throw new ApiError(400, 'fips: true is set but k8sd is not running in FIPS mode; start k8sd with K8S_FIPS=1 (snap: snap set k8s fips=true) on a host with an active OpenSSL FIPS provider');
  }
  return { token, name, address, config, timeoutMs: (body.timeoutSeconds ?? 300) * 1000 };
}

/**
 * The cluster's side of one join: the token's control-plane nodes, over connections pinned to the
 * fingerprints in the token. Waits while another join holds the lock (409) or the node is flooded
 * with unauthenticated requests (429).
 */
function clusterClient(m: MembershipContext, p: JoinParams, deadline: number, emit: (e: JoinEvent) => void): JoinClusterClient {
  const identity = { cert: m.d.identity.cert, key: m.d.identity.key };
  const remaining = (): number => Math.max(1000, deadline - Date.now());
  let target: PeerTarget | undefined;
  let aborted = false;
  return {
    async register<T>(body: JoinRequestBody): Promise<T> {
      let announced = false;
      for (;;) {
        let last: Error | undefined;
        for (const e of p.token.endpoints) {
          const t: PeerTarget = { address: e.address, fingerprints: [e.fingerprint] };
          try {
            const reply = await peerRequest<T>(identity, t, 'POST', peer.memberJoin.path, body, Math.min(remaining(), 90_000));
            target = t;
            return reply;
          } catch (err) {
            // Another cluster (or an interceptor) answered: stop, the secret was never sent.
            if (err instanceof PeerIdentityError) throw err;
            if (err instanceof PeerApiError && err.status !== 409 && err.status !== 429 && err.status !== 503) throw new Error(`${e.address} refused the join: ${err.message}`);
            last = err as Error;
          }
        }
        const busy = last instanceof PeerApiError && (last.status === 409 || last.status === 429);
        if (!busy || Date.now() + 2000 > deadline) throw last ?? new Error('the token names no control-plane node');
        if (!announced) {
          emit({ type: 'info', message: `waiting: ${last!.message}` });
          announced = true;
        }
        await sleep(1000 + Math.floor(Math.random() * 1000));
      }
    },
    async promote(memberId) {
      await peerRequest(identity, target!, 'POST', peer.memberPromote.path, { name: p.name, memberId }, 30_000);
    },
    async abort(memberId) {
      if (!target || aborted) return;
      await peerRequest(identity, target, 'POST', peer.memberAbort.path, { name: p.name, ...(memberId ? { memberId } : {}) }, 30_000);
      aborted = true;
    },
  };
}

/** Runs a join; streams progress as NDJSON like bootstrap. */
export async function handleJoinCluster(m: MembershipContext, req: Request, res: ServerResponse): Promise<undefined> {
  const d = m.d;
  const existing = d.node();
  if (existing) throw new ApiError(409, `this node is already part of a cluster (node "${existing.name}", ${existing.role}); remove it first with "k8s remove-node ${existing.name}"`);
  d.lock.check('join');
  const params = await parseJoinRequest(m, parseRequest(local.join, req.body));
  const release = d.lock.acquire('join');
  const started = Date.now();
  const role = params.token.role;
  try {
    return await streamProgress<JoinEvent>(res, m.log, 'join', async (emit) => {
      const deps = { host: d.host, log: m.log, crypto: d.crypto, identity: d.identity, security: d.security, fipsEnabled: d.fips.enabled };
      const joined = await join({ ...deps, remote: clusterClient(m, params, started + params.timeoutMs, emit) }, params, (e) => {
        if (e.type !== 'info') m.log.info(e.type === 'step' ? `join: ${e.title}` : `join: rolled back ${e.step}`, e.type === 'rollback' && e.error ? { error: e.error } : {});
        emit(e);
      });
      if (joined.etcd) d.adoptDatastore(joined.etcd);
      await d.clustered(joined.node);
      const seconds = (Date.now() - started) / 1000;
      m.log.info('join complete', { node: params.name, role, seconds });
      return { name: params.name, address: params.address, role, seconds };
    });
  } finally {
    release();
  }
}
