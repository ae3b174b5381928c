// The joining side: `k8s join-cluster <token>` → POST /1.0/k8sd/cluster/join on the local API.
// Everything that can be checked locally is checked before anything is written or sent:
// the token's format, checksum and expiry, the node name and address, the join file. The
// control plane is contacted over a connection pinned to the fingerprint in the token; only
// then is the secret sent. Each flow is a list of named steps that roll back on failure (the
// cluster side included: an aborted control-plane join removes its etcd member). A token that
// got a reply with certificates is spent even when a later step fails: ask for a new one.
import { existsSync, rmSync } from 'node:fs';
import { ServerResponse } from 'node:http';
import { canonicalIp, defaultNodeAddress } from '../../config/net.js';
import { JoinConfig, parseJoinYaml } from '../../config/join.js';
import { EtcdClient } from '../../datastore/etcd.js';
import { ClusterState, LocalNodeState, removeLocalNode, writeLocalNode } from '../../datastore/state.js';
import { commitFileSet, FileSpec, removeFiles } from '../../host/files.js';
import { issueNodeCertificates, PkiBundle, pkiFiles, kubeconfigFiles } from '../../pki/signer.js';
import { apiServerUrl, BINARIES, localAddress } from '../../services/specs.js';
import { assertComponents } from '../../services/binaries.js';
import { apiserverProxyEndpointsPath, NodeServiceContext, renderApiserverProxyEndpoints } from '../../services/worker-specs.js';
import {
  controlPlaneArgsFiles,
  controlPlaneServices,
  crashWatch,
  etcdClientUrl,
  k8sdEtcdTlsFiles,
  nodeIdentity,
  serviceContext,
  startKubernetesControlPlane,
  waitEtcdHealthy,
} from '../controlplane.js';
import { FlowError, runFlow, Step, StepEvent } from '../flows/flow.js';
import { ApiError, Request } from '../http.js';
import { local, peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { checkAddressForm, NodeAdmissionError } from './admission.js';
import { joinPayloadProviders } from './extensions.js';
import type { Membership } from './index.js';
import { ControlPlaneJoinReply, JoinRequestBody, K8SD_CLUSTER_PORT, leafLifetimeMs, WORKER_CLIENT_CERTS, WorkerClientCert, WorkerJoinReply, workerClientSubject } from './join-server.js';
import { onPath } from '../../host/host.js';
import { canLowerOomScores, controlPlaneNodeContext, nodeBinaries, nodeComponentFiles, nodePorts, nodeRuntimeDirsOf, removeNodeComponents, startNodeComponents } from './node-components.js';
import { PeerApiError, PeerIdentityError, peerRequest, PeerTarget, PeerRecord, writePeers } from './peer.js';
import { decodeToken, JoinToken, TokenExpiredError, TokenFormatError } from './token.js';
import { overrideFiles, warnWeakenedFlags } from '../overrides.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface JoinParams {
  token: JoinToken;
  name: string;
  address: string;
  config: JoinConfig;
  timeoutMs: number;
}

interface Ctx {
  m: Membership;
  p: JoinParams;
  deadline: number;
  emit: (e: StepEvent | { type: 'info'; message: string }) => void;
  target?: PeerTarget;
  written: string[];
  etcd?: EtcdClient;
  cp?: ControlPlaneJoinReply;
  bundle?: PkiBundle;
  worker?: WorkerJoinReply;
  workerKeys?: Record<WorkerClientCert, string>;
  workerCsrs?: Record<WorkerClientCert, string>;
  node?: LocalNodeState;
  /** The cluster side was already told to undo this join. */
  aborted?: boolean;
}

const remaining = (ctx: Ctx): number => Math.max(1000, ctx.deadline - Date.now());

/** Validates a join request completely; throws ApiError(400) with the reason. Writes nothing. */
export async function parseJoinRequest(m: Membership, body: { token?: string; name?: string; address?: string; config?: string; timeoutSeconds?: number }): Promise<JoinParams> {
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

/** Sends the join request to the control-plane nodes of the token, pinned; waits while another join holds the lock. */
async function contactCluster<T>(ctx: Ctx, body: JoinRequestBody): Promise<T> {
  const identity = { cert: ctx.m.d.identity.cert, key: ctx.m.d.identity.key };
  let announced = false;
  for (;;) {
    let last: Error | undefined;
    for (const e of ctx.p.token.endpoints) {
      const target: PeerTarget = { address: e.address, fingerprints: [e.fingerprint] };
      try {
        const reply = await peerRequest<T>(identity, target, 'POST', peer.memberJoin.path, body, Math.min(remaining(ctx), 90_000));
        ctx.target = target;
        return reply;
      } catch (err) {
        // Another cluster (or an interceptor) answered: stop, the secret was never sent.
        if (err instanceof PeerIdentityError) throw err;
        if (err instanceof PeerApiError && err.status !== 409 && err.status !== 429 && err.status !== 503) throw new Error(`${e.address} refused the join: ${err.message}`);
        last = err as Error;
      }
    }
    // 409: another join holds the lock; 429: the node is flooded with unauthenticated requests.
    const busy = last instanceof PeerApiError && (last.status === 409 || last.status === 429);
    if (!busy || Date.now() + 2000 > ctx.deadline) throw last ?? new Error('the token names no control-plane node');
    if (!announced) {
      ctx.emit({ type: 'info', message: `waiting: ${last!.message}` });
      announced = true;
    }
    await sleep(1000 + Math.floor(Math.random() * 1000));
  }
}

async function abortOnCluster(ctx: Ctx, memberId?: string): Promise<void> {
  if (!ctx.target || ctx.aborted) return;
  const identity = { cert: ctx.m.d.identity.cert, key: ctx.m.d.identity.key };
  await peerRequest(identity, ctx.target, 'POST', peer.memberAbort.path, { name: ctx.p.name, ...(memberId ? { memberId } : {}) }, 30_000);
  ctx.aborted = true;
}

async function checkPorts(ctx: Ctx, ports: Array<[string, number, string]>): Promise<void> {
  for (const [a, p, what] of ports) {
    if (!(await ctx.m.d.host.portFree(a, p))) throw new Error(`port ${a}:${p} (${what}) is already in use; stop whatever listens there first`);
  }
}


function peersWithSelf(members: PeerRecord[], self: PeerRecord): PeerRecord[] {
  return [...members.filter((x) => x.name !== self.name), self];
}

const controlPlaneSteps: Step<Ctx>[] = [
  {
    name: 'preflight',
    title: 'Checking the node',
    async run(ctx) {
      const l = ctx.m.d.layout;
      if (ctx.m.d.node()) throw new Error('this node is already part of a cluster');
      assertComponents(l, (['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const).map((s) => [BINARIES[s].component, BINARIES[s].binary] as const));
      assertComponents(l, nodeBinaries('control-plane'));
      if (!onPath('iptables')) throw new Error('iptables is not installed; kube-proxy and the CNI plugins need it (apt-get install iptables)');
      await checkPorts(ctx, nodePorts('control-plane', 6443));
      if (existsSync(l.etcdDataDir)) throw new Error(`${l.etcdDataDir} already exists from an earlier cluster; remove it to join`);
    },
  },
  {
    name: 'register',
    title: 'Joining the cluster (token check, etcd learner)',
    async run(ctx) {
      ctx.cp = await contactCluster<ControlPlaneJoinReply>(ctx, {
        token: { name: ctx.p.token.name, secret: ctx.p.token.secret },
        role: 'control-plane',
        node: { name: ctx.p.name, address: ctx.p.address, clusterCert: ctx.m.d.identity.cert },
        fips: ctx.m.d.fips.enabled,
      });
    },
    async rollback(ctx) {
      await abortOnCluster(ctx, ctx.cp?.memberId);
    },
  },
  {
    name: 'pki',
    title: 'Issuing this node’s certificates',
    async run(ctx) {
      const { config, pki } = ctx.cp!;
      const d = ctx.m.d;
      const local = localAddress({ nodeAddress: ctx.p.address });
      await checkPorts(ctx, [
        [ctx.p.address, config.securePort, 'kube-apiserver'],
        [local, 10257, 'kube-controller-manager'],
        [local, 10259, 'kube-scheduler'],
        [ctx.p.address, config.etcdPort, 'etcd client'],
        [ctx.p.address, config.etcdPeerPort, 'etcd peer'],
        [local, config.etcdPort, 'etcd client'],
      ]);
      const identity = nodeIdentity(d.host, ctx.p, config, ctx.p.config.extraSans);
      const { leaves, kubeconfigs } = await issueNodeCertificates(
        d.crypto,
        pki.cas,
        identity,
        'control-plane',
        { keyType: config.keyType, leafLifetimeMs: leafLifetimeMs(config) },
        ctx.p.config.supplied,
      );
      ctx.bundle = { cas: pki.cas, leaves, kubeconfigs, serviceAccountKey: pki.serviceAccountKey, serviceAccountPub: await d.crypto.publicKeyOf(pki.serviceAccountKey) };
      for (const p of joinPayloadProviders()) if (ctx.cp!.extras[p.key] !== undefined) await p.import(ctx.cp!.extras[p.key], { config });
    },
    async rollback() {
      for (const p of joinPayloadProviders()) await p.discard?.();
    },
  },
  {
    name: 'write-config',
    title: 'Writing certificates, kubeconfigs and service arguments',
    async run(ctx) {
      const d = ctx.m.d;
      const { config, etcd } = ctx.cp!;
      const server = apiServerUrl({ nodeAddress: ctx.p.address, securePort: config.securePort });
      const sctx = serviceContext(d.host, ctx.p, config, { initialCluster: etcd.initialCluster, state: 'existing' }, d.security.apiserverArgs(config));
      const files: FileSpec[] = [
        ...pkiFiles(d.layout, ctx.bundle!, server, 'control-plane'),
        ...(await d.security.files(config)),
        ...controlPlaneArgsFiles(d.host, sctx, controlPlaneServices(config), ctx.p.config.extraArgs),
        ...nodeComponentFiles(controlPlaneNodeContext(d.layout, ctx.p, config), ctx.p.config.extraArgs, ctx.p.config.containerdConfig),
        ...overrideFiles(d.layout, ctx.p.config.weakened, ctx.p.config.configFiles),
      ];
      warnWeakenedFlags(ctx.m.log, ctx.p.config.weakened, 'join');
      ctx.written = files.map((f) => f.path);
      commitFileSet(files, d.layout.k8sdStateDir);
    },
    async rollback(ctx) {
      removeFiles(ctx.written);
    },
  },
  {
    name: 'start-datastore',
    title: 'Starting etcd as a learner',
    async run(ctx) {
      const d = ctx.m.d;
      const l = d.layout;
      const { config } = ctx.cp!;
      await d.host.services.start('etcd');
      const local = localAddress({ nodeAddress: ctx.p.address });
      ctx.etcd = EtcdClient.fromFiles([etcdClientUrl(local, config.etcdPort)], k8sdEtcdTlsFiles(l, true));
      await waitEtcdHealthy(ctx.etcd, remaining(ctx), crashWatch(d.host, 'etcd', l.log('etcd')));
    },
    async rollback(ctx) {
      ctx.etcd?.close();
      await ctx.m.d.host.services.stop('etcd');
      rmSync(ctx.m.d.layout.etcdDataDir, { recursive: true, force: true });
    },
  },
  {
    name: 'promote',
    title: 'Promoting the etcd learner to a voting member',
    async run(ctx) {
      const identity = { cert: ctx.m.d.identity.cert, key: ctx.m.d.identity.key };
      let last: Error | undefined;
      for (let attempt = 0; attempt < 30 && Date.now() < ctx.deadline; attempt++) {
        try {
          await peerRequest(identity, ctx.target!, 'POST', peer.memberPromote.path, { name: ctx.p.name, memberId: ctx.cp!.memberId }, 30_000);
          return;
        } catch (err) {
          last = err as Error;
          if (!(err instanceof PeerApiError && err.status === 409)) throw err;
          await sleep(1000);
        }
      }
      throw new Error(`the etcd learner did not catch up in time: ${last?.message ?? 'deadline reached'}`);
    },
    async rollback(ctx) {
      // Remove the member while this etcd still runs, so that a two-member cluster keeps quorum.
      await abortOnCluster(ctx, ctx.cp?.memberId);
    },
  },
  {
    name: 'start-control-plane',
    title: 'Starting kube-apiserver, kube-controller-manager and kube-scheduler',
    async run(ctx) {
      await ctx.m.d.security.beforeApiserver(ctx.cp!.config);
      await startKubernetesControlPlane(ctx.m.d.host, remaining(ctx));
    },
    async rollback(ctx) {
      for (const s of ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'] as const) await ctx.m.d.host.services.stop(s);
      await ctx.m.d.security.stop();
    },
  },
  {
    name: 'start-node',
    title: 'Starting containerd, kubelet and kube-proxy',
    async run(ctx) {
      await startNodeComponents(ctx.m.d.host, ctx.m.log, 'control-plane', Math.min(remaining(ctx), 60_000));
    },
    async rollback(ctx) {
      await removeNodeComponents(ctx.m.d.host, ctx.m.log, 'control-plane');
    },
  },
  {
    name: 'mark-joined',
    title: 'Recording node membership',
    async run(ctx) {
      const d = ctx.m.d;
      const { config } = ctx.cp!;
      const local = localAddress({ nodeAddress: ctx.p.address });
      ctx.node = {
        name: ctx.p.name,
        address: ctx.p.address,
        role: 'control-plane',
        clusterPort: K8SD_CLUSTER_PORT,
        etcdEndpoints: [etcdClientUrl(local, config.etcdPort)],
        securePort: config.securePort,
        bootstrappedAt: new Date().toISOString(),
      };
      writePeers(d.layout, peersWithSelf(ctx.cp!.members, { name: ctx.p.name, address: ctx.p.address, role: 'control-plane', fingerprint: d.identity.fingerprint, clusterPort: K8SD_CLUSTER_PORT }));
      writeLocalNode(d.layout, ctx.node);
    },
    async rollback(ctx) {
      removeLocalNode(ctx.m.d.layout);
      rmSync(ctx.m.d.layout.peersFile, { force: true });
    },
  },
];

export function nodeContextFor(m: Membership, name: string, address: string, role: 'control-plane' | 'worker', c: WorkerJoinReply['config']): NodeServiceContext {
  return {
    layout: m.d.layout,
    role,
    nodeName: name,
    nodeAddress: address,
    podCidr: c.podCidr,
    serviceCidr: c.serviceCidr,
    clusterDomain: c.clusterDomain,
    ...(c.dnsServiceIp ? { dnsServiceIp: c.dnsServiceIp } : {}),
    failCgroupV1: c.failCgroupV1,
    apiserverPort: c.securePort,
    restrictOomScoreAdj: !canLowerOomScores(),
    network: c.network ?? false,
  };
}

/** Directories a worker's components fill at run time (removed on rollback and on leave). */
export function nodeRuntimeDirs(m: Membership): string[] {
  return nodeRuntimeDirsOf(m.d.layout);
}

const workerSteps: Step<Ctx>[] = [
  {
    name: 'preflight',
    title: 'Checking the node',
    async run(ctx) {
      const l = ctx.m.d.layout;
      if (ctx.m.d.node()) throw new Error('this node is already part of a cluster');
      assertComponents(l, nodeBinaries('worker'));
      if (!onPath('iptables')) throw new Error('iptables is not installed; kube-proxy and the CNI plugins need it (apt-get install iptables)');
      await checkPorts(ctx, nodePorts('worker', 6443));
    },
  },
  {
    name: 'keys',
    title: 'Generating keys and certificate requests',
    async run(ctx) {
      const d = ctx.m.d;

      const keys = {} as Record<WorkerClientCert, string>;
      const csrs = {} as Record<WorkerClientCert, string>;
      for (const c of WORKER_CLIENT_CERTS) {
        const kp = await d.crypto.generateKeyPair('ecdsa-p256');
        keys[c] = kp.privateKeyPem;
        csrs[c] = await d.crypto.createCsr(workerClientSubject(c, ctx.p.name), kp);
      }
      ctx.workerKeys = keys;
      ctx.workerCsrs = csrs;
    },
  },
  {
    name: 'register',
    title: 'Joining the cluster (token check, client certificates)',
    async run(ctx) {
      ctx.worker = await contactCluster<WorkerJoinReply>(ctx, {
        token: { name: ctx.p.token.name, secret: ctx.p.token.secret },
        role: 'worker',
        node: { name: ctx.p.name, address: ctx.p.address, clusterCert: ctx.m.d.identity.cert },
        csrs: ctx.workerCsrs!,
        fips: ctx.m.d.fips.enabled,
      });
    },
    async rollback(ctx) {
      // The cluster issued this node's certificates: it keeps the node's record and the token is
      // spent. Only an operator takes the node out again.
      if (!ctx.worker) return;
      ctx.emit({
        type: 'info',
        message: `the cluster registered "${ctx.p.name}" and issued its certificates before this join failed; on a control-plane node run "k8s remove-node ${ctx.p.name}", then join again with a new token`,
      });
    },
  },
  {
    name: 'write-config',
    title: 'Writing certificates, kubeconfigs and service arguments',
    async run(ctx) {
      const d = ctx.m.d;
      const l = d.layout;
      const w = ctx.worker!;
      if (w.config.securePort !== 6443) await checkPorts(ctx, [['127.0.0.1', w.config.securePort, 'k8s-apiserver-proxy']]);
      const server = apiServerUrl({ nodeAddress: '127.0.0.1', securePort: w.config.securePort });
      const nctx = nodeContextFor(ctx.m, ctx.p.name, ctx.p.address, 'worker', w.config);
      const files: FileSpec[] = [
        { path: l.pki('ca.crt'), content: w.caCert, mode: 0o644 },
        { path: l.pki('client-ca.crt'), content: w.clientCaCert, mode: 0o644 },
        ...WORKER_CLIENT_CERTS.flatMap((c) => kubeconfigFiles(l, c, server, [w.caCert], w.certificates[c], ctx.workerKeys![c])),
        { path: apiserverProxyEndpointsPath(l), content: renderApiserverProxyEndpoints(w.apiservers), mode: 0o644 },
        ...nodeComponentFiles(nctx, ctx.p.config.extraArgs, ctx.p.config.containerdConfig),
        ...overrideFiles(l, ctx.p.config.weakened, ctx.p.config.configFiles),
      ];
      warnWeakenedFlags(ctx.m.log, ctx.p.config.weakened, 'join');
      ctx.written = files.map((f) => f.path);
      commitFileSet(files, l.k8sdStateDir);
    },
    async rollback(ctx) {
      removeFiles(ctx.written);
    },
  },
  {
    name: 'start-services',
    title: 'Starting containerd, k8s-apiserver-proxy, kubelet and kube-proxy',
    async run(ctx) {
      await startNodeComponents(ctx.m.d.host, ctx.m.log, 'worker', Math.min(remaining(ctx), 60_000));
    },
    async rollback(ctx) {
      await removeNodeComponents(ctx.m.d.host, ctx.m.log, 'worker');
    },
  },
  {
    name: 'mark-joined',
    title: 'Recording node membership',
    async run(ctx) {
      const d = ctx.m.d;
      ctx.node = {
        name: ctx.p.name,
        address: ctx.p.address,
        role: 'worker',
        clusterPort: K8SD_CLUSTER_PORT,
        etcdEndpoints: [],
        securePort: ctx.worker!.config.securePort,
        bootstrappedAt: new Date().toISOString(),
        ...(ctx.worker!.config.certificates ? { certificatePolicy: ctx.worker!.config.certificates } : {}),
      };
      writePeers(d.layout, ctx.worker!.members);
      writeLocalNode(d.layout, ctx.node);
    },
    async rollback(ctx) {
      removeLocalNode(ctx.m.d.layout);
      rmSync(ctx.m.d.layout.peersFile, { force: true });
    },
  },
];

/** Runs a join; streams progress as NDJSON like bootstrap. */
export async function handleJoinCluster(m: Membership, req: Request, res: ServerResponse): Promise<undefined> {
  const d = m.d;
  const existing = d.node();
  if (existing) throw new ApiError(409, `this node is already part of a cluster (node "${existing.name}", ${existing.role}); remove it first with "k8s remove-node ${existing.name}"`);
  d.lock.check('join');
  const params = await parseJoinRequest(m, parseRequest(local.join, req.body));
  const release = d.lock.acquire('join');
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const emit = (e: StepEvent | { type: 'info'; message: string } | { type: 'done'; metadata: unknown } | { type: 'error'; error: string }): void => {
    res.write(JSON.stringify(e) + '\n');
  };
  const started = Date.now();
  const ctx: Ctx = { m, p: params, deadline: started + params.timeoutMs, emit, written: [] };
  const role = params.token.role;
  try {
    await runFlow(`join (${role})`, role === 'control-plane' ? controlPlaneSteps : workerSteps, ctx, (e) => {
      m.log.info(e.type === 'step' ? `join: ${e.title}` : `join: rolled back ${e.step}`, e.type === 'rollback' && e.error ? { error: e.error } : {});
      emit(e);
    });
    if (ctx.etcd) {
      d.etcd = ctx.etcd;
      d.state = new ClusterState(ctx.etcd, d.pkiKeys);
    }
    await d.clustered(ctx.node!);
    const seconds = (Date.now() - started) / 1000;
    m.log.info('join complete', { node: params.name, role, seconds });
    emit({ type: 'done', metadata: { name: params.name, address: params.address, role, seconds } });
  } catch (err) {
    const msg = err instanceof FlowError ? err.message : (err as Error).message;
    m.log.error('join failed', { error: msg });
    emit({ type: 'error', error: msg });
  } finally {
    release();
    res.end();
  }
  return undefined;
}
