// A Host: the host's facts and paths (host/host.ts) with the ServiceManager that runs this node's
// services. Flows and controllers reach the machine only through one, so tests can swap it.
import { HostFacts, LocalHost } from '../host/host.js';
import { Layout } from '../layout.js';
import { Logger } from '../log.js';
import { KubeletClientStoreSync } from './kubelet-client-store.js';
import { ServiceManager, SnapServiceManager, Supervisor } from './manager.js';

export interface Host extends HostFacts {
  readonly services: ServiceManager;
}

/** This machine: snapd runs the services inside the snap, k8sd's supervisor outside it. */
export function localHost(layout: Layout, log: Logger, services?: ServiceManager): Host {
  const manager = services ?? new KubeletClientStoreSync(layout.inSnap ? new SnapServiceManager() : new Supervisor(layout, log), layout);
  return Object.assign(new LocalHost(layout), { services: manager });
}
