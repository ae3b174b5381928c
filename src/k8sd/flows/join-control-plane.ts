// The control-plane join, on the joining node: register with the cluster (which adds an etcd
// learner), issue this node's certificates, write its files, start etcd, get it promoted, then
// start the control plane and the node components. A failure after register tells the cluster to
// take the member out again.
import { issueNodeCertificates, PkiBundle } from '../../pki/signer.js';
import { localAddress } from '../../services/specs.js';
import { controlPlaneServices, etcdClientUrl, nodeIdentity } from '../controlplane.js';
import { joinPayloadProviders } from '../membership/extensions.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { ControlPlaneJoinReply, leafLifetimeMs } from '../membership/join-server.js';
import { nodePorts } from '../membership/node-components.js';
import { PeerApiError, PeerRecord } from '../cluster/peer.js';
import { Step } from './flow.js';
import { type JoinCtx, registerRequest } from './join-context.js';
import { checkPortsFree, controlPlaneFiles, controlPlanePorts, preflightStep, recordNodeStep, startControlPlaneStep, startDatastoreStep, startNodeStep, writeConfigStep } from './node-steps.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Ctx extends JoinCtx {
  cp?: ControlPlaneJoinReply;
  bundle?: PkiBundle;
}

function peersWithSelf(members: PeerRecord[], self: PeerRecord): PeerRecord[] {
  return [...members.filter((x) => x.name !== self.name), self];
}

export const controlPlaneJoinSteps: Step<Ctx>[] = [
  preflightStep<Ctx>({
    role: 'control-plane',
    // The cluster's configuration is not known yet: its control-plane ports are checked once it is.
    controlPlane: () => controlPlaneServices({ datastoreType: 'etcd' }),
    ports: () => nodePorts('control-plane', 6443),
    portAdvice: ' first',
    etcdDataDirAdvice: 'remove it to join',
  }),
  {
    name: 'register',
    title: 'Joining the cluster (token check, etcd learner)',
    async run(ctx) {
      ctx.cp = await ctx.remote.register<ControlPlaneJoinReply>(registerRequest(ctx, 'control-plane'));
      ctx.cluster = ctx.cp.config;
    },
    async rollback(ctx) {
      await ctx.remote.abort(ctx.cp?.memberId);
    },
  },
  {
    name: 'pki',
    title: 'Issuing this node’s certificates',
    async run(ctx) {
      const { config, pki } = ctx.cp!;
      await checkPortsFree(ctx.host, controlPlanePorts(ctx.p.address, config), ' first');
      const identity = nodeIdentity(ctx.host, ctx.p, config, ctx.p.config.extraSans);
      const { leaves, kubeconfigs } = await issueNodeCertificates(
        ctx.crypto,
        pki.cas,
        identity,
        'control-plane',
        { keyType: config.keyType, leafLifetimeMs: leafLifetimeMs(config) },
        ctx.p.config.supplied,
      );
      ctx.bundle = { cas: pki.cas, leaves, kubeconfigs, serviceAccountKey: pki.serviceAccountKey, serviceAccountPub: await ctx.crypto.publicKeyOf(pki.serviceAccountKey) };
      for (const p of joinPayloadProviders()) if (ctx.cp!.extras[p.key] !== undefined) await p.import(ctx.cp!.extras[p.key], { config });
    },
    async rollback() {
      for (const p of joinPayloadProviders()) await p.discard?.();
    },
  },
  writeConfigStep<Ctx>((ctx) => controlPlaneFiles(ctx, ctx.bundle!, { initialCluster: ctx.cp!.etcd.initialCluster, state: 'existing' }, ctx.p.config, 'join')),
  startDatastoreStep<Ctx>('Starting etcd as a learner'),
  {
    name: 'promote',
    title: 'Promoting the etcd learner to a voting member',
    async run(ctx) {
      let last: Error | undefined;
      for (let attempt = 0; attempt < 30 && Date.now() < ctx.deadline; attempt++) {
        try {
          await ctx.remote.promote(ctx.cp!.memberId);
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
      await ctx.remote.abort(ctx.cp?.memberId);
    },
  },
  startControlPlaneStep<Ctx>(),
  startNodeStep<Ctx>('control-plane', 'start-node', 'Starting containerd, kubelet and kube-proxy'),
  recordNodeStep<Ctx>('mark-joined', (ctx) => {
    const { config, members } = ctx.cp!;
    ctx.record = {
      name: ctx.p.name,
      address: ctx.p.address,
      role: 'control-plane',
      clusterPort: K8SD_CLUSTER_PORT,
      etcdEndpoints: [etcdClientUrl(localAddress({ nodeAddress: ctx.p.address }), config.etcdPort)],
      securePort: config.securePort,
      bootstrappedAt: new Date().toISOString(),
    };
    const self: PeerRecord = { name: ctx.p.name, address: ctx.p.address, role: 'control-plane', fingerprint: ctx.identity.fingerprint, clusterPort: K8SD_CLUSTER_PORT };
    return { node: ctx.record, peers: peersWithSelf(members, self) };
  }),
];
