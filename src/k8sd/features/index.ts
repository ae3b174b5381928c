// Features: the controller on control-plane nodes, and the API behind `k8s enable|disable|set|get`
// (PUT/GET /1.0/k8sd/cluster/config, Canonical Kubernetes' endpoint; cluster-config.ts) and the status lines.
import type { ModuleRegistry, NodeContext } from '../node-context.js';
import { FeatureController } from './controller.js';
import { stopNetworkPolicies } from './node.js';
import { stopLoadBalancer } from './load-balancer.js';
import { getClusterConfigRoute } from '../routes/config/get-cluster-config.js';
import { setClusterConfigRoute } from '../routes/config/set-cluster-config.js';
import { featuresRoute } from '../routes/config/features.js';

let controller: FeatureController | undefined;

export function registerFeatures(d: NodeContext & ModuleRegistry): void {
  d.extraLocalRoutes.push(getClusterConfigRoute(d), setClusterConfigRoute(d, () => void controller?.trigger()), featuresRoute(d));
  d.onClustered.push(async (node) => {
    if (node.role !== 'control-plane') return;
    controller ??= new FeatureController(d);
    controller.start();
  });
  d.onStop.push(async () => {
    controller?.stop();
    stopNetworkPolicies(d.layout.root);
    stopLoadBalancer(d.layout.root);
  });
}
