// The `external-load-balancer` relation (interface loadbalancer, schema v1): a load balancer in
// front of the API servers. The leader asks, in its application bag under `request`, for TCP 443
// forwarded to every unit's 6443 with an HTTPS /livez health check; the provider answers in its
// application bag under `response` with the address it allocated. That address goes into the API
// server certificate (extra SANs) and is the server of the kubeconfigs this charm hands out.
import { isIP } from 'node:net';
import type { Model, Relation } from '../../runtime/src/model.js';

export const LB_ENDPOINT = 'external-load-balancer';
export const LB_REQUEST_KEY = 'request';
export const LB_RESPONSE_KEY = 'response';
export const LB_PORT = 443;

export interface LoadBalancerRequest {
  readonly name: string;
  readonly protocol: 'tcp';
  readonly port_mapping: Readonly<Record<string, number>>;
  readonly public: boolean;
  readonly health_checks: ReadonlyArray<{ protocol: 'https'; port: number; path: string; interval: number; retries: number }>;
  readonly sans: readonly string[];
}

/** The request the leader publishes: one per application, named after it. */
export function loadBalancerRequest(app: string, apiServerPort: number): LoadBalancerRequest {
  return {
    name: `${app}-kube-apiserver`,
    protocol: 'tcp',
    port_mapping: { [String(LB_PORT)]: apiServerPort },
    public: true,
    health_checks: [{ protocol: 'https', port: apiServerPort, path: '/livez', interval: 30, retries: 3 }],
    sans: [],
  };
}

export type LoadBalancerState =
  | { readonly kind: 'unrelated' }
  | { readonly kind: 'pending' }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'ready'; readonly address: string };

export const LB_WAITING_MESSAGE = 'Waiting for the external load balancer to answer with an address';

/** Reads the provider's `response`: {success, address, message}. A bad answer is a failure that says why. */
export function parseLoadBalancerResponse(text: string | undefined): LoadBalancerState {
  if (text === undefined || text.trim() === '') return { kind: 'pending' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'failed', message: `${LB_RESPONSE_KEY} is not JSON` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'failed', message: `${LB_RESPONSE_KEY} is not a JSON object` };
  const response = value as Record<string, unknown>;
  const message = typeof response.message === 'string' ? response.message : '';
  if (response.success === false) return { kind: 'failed', message: message || 'the load balancer refused the request' };
  const address = typeof response.address === 'string' ? response.address.trim() : '';
  if (address === '') return { kind: 'pending' };
  if (isIP(address) === 0 && !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(address)) {
    return { kind: 'failed', message: `${LB_RESPONSE_KEY} address '${address}' is neither an IP address nor a DNS name` };
  }
  return { kind: 'ready', address };
}

/** The load balancer as this unit sees it; the leader (re)publishes the request on the way. */
export async function reconcileLoadBalancer(model: Model, apiServerPort: number): Promise<LoadBalancerState> {
  const relation = await model.relation(LB_ENDPOINT);
  if (!relation) return { kind: 'unrelated' };
  if (await model.isLeader()) {
    (await relation.localAppBag()).set(LB_REQUEST_KEY, JSON.stringify(loadBalancerRequest(model.unit.app, apiServerPort)));
  }
  return readResponse(relation);
}

async function readResponse(relation: Relation): Promise<LoadBalancerState> {
  return parseLoadBalancerResponse((await relation.remoteAppBag()).get(LB_RESPONSE_KEY));
}

/** The address the load balancer answered with, if any (actions: read only). */
export async function loadBalancerAddress(model: Model): Promise<string | undefined> {
  const relation = await model.relation(LB_ENDPOINT);
  if (!relation) return undefined;
  const state = await readResponse(relation);
  return state.kind === 'ready' ? state.address : undefined;
}

/** https://<address>:443, with IPv6 bracketed. */
export function loadBalancerServer(address: string): string {
  return `https://${isIP(address) === 6 ? `[${address}]` : address}:${LB_PORT}`;
}
