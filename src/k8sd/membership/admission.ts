// Who a joining node may claim to be: its name and its address. Pure rules, applied by the join
// server (join-server.ts) before a token is used, and by `get-join-token` for bound names.
//  - The address is an IP address in its one canonical form (config/net.ts canonicalIp), a unicast
//    one (not unspecified, loopback, IPv4-mapped or -compatible, link-local, multicast, broadcast),
//    used by no other member, and the source address of the join connection, unless the operator
//    named it on the token (`k8s get-join-token --address`, for nodes behind NAT).
//  - The name is not one the cluster's own certificates or conventions use (the `kubernetes`
//    Service names, localhost, the extra SANs of the apiserver, IP addresses) nor another member's.
// Certificates issued for the node carry that name and address (kubelet serving CSRs are approved
// only for them, csr-approval.ts), so these rules are what keeps a node from being issued a
// certificate for a name or address that is not its own.
import { canonicalIp, ipKind, IpKind, unmapIpv4 } from '../../config/net.js';
import { apiserverServiceNames } from '../../pki/table.js';

export type AdmissionKey = 'node.name' | 'node.address';

/** A joining node's name or address is refused; `status` is the HTTP status to answer with. */
export class NodeAdmissionError extends Error {
  constructor(
    readonly key: AdmissionKey,
    readonly status: 400 | 403 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'NodeAdmissionError';
  }
}

const KIND_REASONS: Record<Exclude<IpKind, 'unicast'>, string> = {
  unspecified: 'an unspecified address (0.0.0.0/8 or ::)',
  loopback: 'a loopback address',
  'ipv4-mapped': 'an IPv4-mapped IPv6 address (::ffff:a.b.c.d); give the IPv4 address itself',
  'ipv4-compatible': 'an IPv4-compatible IPv6 address (::a.b.c.d, deprecated); give the IPv4 address itself',
  'link-local': 'a link-local address',
  multicast: 'a multicast address',
  broadcast: 'a broadcast or reserved address',
};

/** Checks the form of a node address; returns it (it is already canonical). */
export function checkAddressForm(address: string): string {
  const canonical = canonicalIp(address);
  if (canonical === undefined) throw new NodeAdmissionError('node.address', 400, `node.address "${address}" is not an IP address; join with --address set to an IP address of this node`);
  const kind = ipKind(canonical);
  if (kind !== 'unicast') {
    throw new NodeAdmissionError('node.address', 400, `node.address "${address}" is ${KIND_REASONS[kind]}; join with --address set to a unicast address the other nodes can reach`);
  }
  if (canonical !== address) {
    throw new NodeAdmissionError('node.address', 400, `node.address "${address}" is not in canonical form; write it as "${canonical}"`);
  }
  return canonical;
}

/** A member as admission sees it. */
export interface MemberIdentity {
  name: string;
  address: string;
}

export interface AddressClaim {
  /** The node's name (its own record may hold the address: a control-plane join resumed). */
  name: string;
  address: string;
  /** The peer address of the join connection, as the socket reports it. */
  source: string | undefined;
  /** An address the operator allowed on the token (`get-join-token --address`). */
  allowedAddress?: string;
  members: MemberIdentity[];
}

/** Unique among members, and the connection's own source unless the operator named it. */
export function checkAddressClaim(c: AddressClaim): void {
  const mine = canonicalIp(c.address);
  const clash = c.members.find((m) => m.name !== c.name && canonicalIp(m.address) === mine);
  if (clash) {
    throw new NodeAdmissionError('node.address', 409, `node.address ${c.address} is already used by node "${clash.name}"; join with another --address, or remove "${clash.name}" first`);
  }
  if (c.allowedAddress !== undefined && canonicalIp(c.allowedAddress) === mine) return;
  const source = c.source === undefined ? undefined : canonicalIp(unmapIpv4(c.source));
  if (source !== mine) {
    throw new NodeAdmissionError(
      'node.address',
      403,
      `node.address ${c.address} is not the source address of the join connection (${source ?? 'unknown'}); join with --address ${source ?? '<the address this node connects from>'}, ` +
        `or, if the node is reached at ${c.address} but connects from another address (NAT), issue its token with "k8s get-join-token --address ${c.address}"`,
    );
  }
}

export interface NameContext {
  clusterDomain: string;
  /** The apiserver's extra SANs (cluster config extra-sans). */
  extraSans: string[];
}

/** Why a name is reserved, or undefined when it is not. */
export function reservedNameReason(name: string, ctx: NameContext): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (apiserverServiceNames(ctx.clusterDomain).includes(n)) return 'a name of the kubernetes Service (the API server)';
  if (n === 'localhost' || n.endsWith('.localhost') || n === 'localhost.localdomain') return 'a name of the local host';
  if (ctx.extraSans.some((s) => s.toLowerCase().replace(/\.$/, '') === n)) return 'an extra SAN of the API server certificate';
  if (canonicalIp(n) !== undefined || /^\d+(\.\d+){3}$/.test(n)) return 'an IP address, not a name';
  return undefined;
}

/** Refuses reserved names and names of other members. */
export function checkNodeName(name: string, ctx: NameContext & { members?: MemberIdentity[]; self?: string }): void {
  const why = reservedNameReason(name, ctx);
  if (why) throw new NodeAdmissionError('node.name', 400, `node name "${name}" is reserved (${why}); join with --name set to this node's own host name`);
  if (ctx.members?.some((m) => m.name === name && m.name !== ctx.self)) {
    throw new NodeAdmissionError('node.name', 409, `node "${name}" is already a member of this cluster; remove it first with "k8s remove-node ${name}"`);
  }
}
