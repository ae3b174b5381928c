// The worker join, on the joining node: make keys and certificate requests, register with the
// cluster (which signs them), write the node's files and start its components. The cluster keeps
// a worker it issued certificates to: undoing that is an operator's "k8s remove-node".
import { FileSpec } from '../../host/files.js';
import { kubeconfigFiles } from '../../pki/signer.js';
import { apiServerUrl } from '../../services/specs.js';
import { apiserverProxyEndpointsPath, NodeServiceContext, renderApiserverProxyEndpoints } from '../../services/worker-specs.js';
import { Layout } from '../../layout.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { WORKER_CLIENT_CERTS, WorkerClientCert, WorkerJoinReply, workerClientSubject } from '../membership/join-server.js';
import { canLowerOomScores, nodeComponentFiles, nodePorts } from '../membership/node-components.js';
import { overrideFiles, warnWeakenedFlags } from '../overrides.js';
import { Step } from './flow.js';
import { type JoinCtx, registerRequest } from './join-context.js';
import { checkPortsFree, preflightStep, recordNodeStep, startNodeStep, writeConfigStep } from './node-steps.js';

interface Ctx extends JoinCtx {
  worker?: WorkerJoinReply;
  workerKeys?: Record<WorkerClientCert, string>;
  workerCsrs?: Record<WorkerClientCert, string>;
}

export function workerNodeContext(layout: Layout, name: string, address: string, c: WorkerJoinReply['config']): NodeServiceContext {
  return {
    layout,
    role: 'worker',
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

export const workerJoinSteps: Step<Ctx>[] = [
  preflightStep<Ctx>({ role: 'worker', ports: () => nodePorts('worker', 6443), portAdvice: ' first' }),
  {
    name: 'keys',
    title: 'Generating keys and certificate requests',
    async run(ctx) {
      const keys = {} as Record<WorkerClientCert, string>;
      const csrs = {} as Record<WorkerClientCert, string>;
      for (const c of WORKER_CLIENT_CERTS) {
        const kp = await ctx.crypto.generateKeyPair('ecdsa-p256');
        keys[c] = kp.privateKeyPem;
        csrs[c] = await ctx.crypto.createCsr(workerClientSubject(c, ctx.p.name), kp);
      }
      ctx.workerKeys = keys;
      ctx.workerCsrs = csrs;
    },
  },
  {
    name: 'register',
    title: 'Joining the cluster (token check, client certificates)',
    async run(ctx) {
      ctx.worker = await ctx.remote.register<WorkerJoinReply>({ ...registerRequest(ctx, 'worker'), csrs: ctx.workerCsrs! });
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
  writeConfigStep<Ctx>(async (ctx) => {
    const l = ctx.host.layout;
    const w = ctx.worker!;
    if (w.config.securePort !== 6443) await checkPortsFree(ctx.host, [['127.0.0.1', w.config.securePort, 'k8s-apiserver-proxy']], ' first');
    const server = apiServerUrl({ nodeAddress: '127.0.0.1', securePort: w.config.securePort });
    const files: FileSpec[] = [
      { path: l.pki('ca.crt'), content: w.caCert, mode: 0o644 },
      { path: l.pki('client-ca.crt'), content: w.clientCaCert, mode: 0o644 },
      ...WORKER_CLIENT_CERTS.flatMap((c) => kubeconfigFiles(l, c, server, [w.caCert], w.certificates[c], ctx.workerKeys![c])),
      { path: apiserverProxyEndpointsPath(l), content: renderApiserverProxyEndpoints(w.apiservers), mode: 0o644 },
      ...nodeComponentFiles(workerNodeContext(l, ctx.p.name, ctx.p.address, w.config), ctx.p.config.extraArgs, ctx.p.config.containerdConfig),
      ...overrideFiles(l, ctx.p.config.weakened, ctx.p.config.configFiles),
    ];
    warnWeakenedFlags(ctx.log, ctx.p.config.weakened, 'join');
    return files;
  }),
  startNodeStep<Ctx>('worker', 'start-services', 'Starting containerd, k8s-apiserver-proxy, kubelet and kube-proxy'),
  recordNodeStep<Ctx>('mark-joined', (ctx) => {
    const w = ctx.worker!;
    ctx.record = {
      name: ctx.p.name,
      address: ctx.p.address,
      role: 'worker',
      clusterPort: K8SD_CLUSTER_PORT,
      etcdEndpoints: [],
      securePort: w.config.securePort,
      bootstrappedAt: new Date().toISOString(),
      ...(w.config.certificates ? { certificatePolicy: w.config.certificates } : {}),
    };
    return { node: ctx.record, peers: w.members };
  }),
];
