// The declared world a charm runs against in a test, and the world that comes out.
// Every field is optional on input; the Context fills in defaults and returns a complete State.
import type { ConfigValue, NetworkInfo, Port, SettableStatus, StringMap } from '../hooktools.js';

export type Bag = StringMap;

export interface RelationState {
  /** The number in 'endpoint:id'; unique across the State. */
  readonly id: number;
  readonly endpoint: string;
  /** The remote application. For a peer relation it is the charm's own application and may be omitted. */
  readonly remoteApp?: string;
  readonly localAppData?: Bag;
  readonly localUnitData?: Bag;
  /** Not used on peer relations: peers share localAppData. */
  readonly remoteAppData?: Bag;
  /** Remote (or, on a peer relation, the other peer) units by unit number. The local unit must not appear here. */
  readonly remoteUnitsData?: Readonly<Record<number, Bag>>;
}

export interface SecretState {
  /** 'secret:…' */
  readonly id: string;
  /** 'app' or 'unit' when this charm owns the secret; absent when another application owns it. */
  readonly owner?: 'app' | 'unit';
  /** Content by revision number. */
  readonly revisions: Readonly<Record<number, Bag>>;
  /** The revision this unit has seen (consumers); absent until its first secret-get. */
  readonly trackedRevision?: number;
  readonly label?: string;
  readonly description?: string;
  /** For a secret owned elsewhere: whether it has been granted to this unit or to its whole application. */
  readonly grantedTo?: 'unit' | 'app';
  /** For an owned secret: who it has been granted to, by relation number (unit or application names). */
  readonly grants?: Readonly<Record<number, readonly string[]>>;
}

export interface StatusState {
  readonly status: SettableStatus | 'unknown';
  readonly message: string;
}

export interface ModelState {
  readonly name: string;
  readonly uuid: string;
}

export interface State {
  readonly leader: boolean;
  readonly config: Readonly<Record<string, ConfigValue>>;
  readonly relations: readonly RelationState[];
  readonly secrets: readonly SecretState[];
  /** By binding (endpoint) name; declared endpoints without an entry get a default network. */
  readonly networks: Readonly<Record<string, NetworkInfo>>;
  readonly openedPorts: readonly Port[];
  readonly unitStatus: StatusState;
  readonly appStatus: StatusState;
  readonly workloadVersion: string;
  /** What state-get returns. */
  readonly storedState: Readonly<Record<string, string>>;
  readonly model: ModelState;
  /** Attached resources: name → path of the file resource-get returns. */
  readonly resources: Readonly<Record<string, string>>;
}

export type StateInput = Partial<State>;

export const DEFAULT_MODEL: ModelState = { name: 'test-model', uuid: '00000000-0000-4000-8000-000000000000' };

export function defaultNetwork(address = '192.0.2.0'): NetworkInfo {
  return {
    bindAddresses: [{ interfaceName: 'eth0', addresses: [{ value: address, cidr: '192.0.2.0/24' }] }],
    ingressAddresses: [address],
    egressSubnets: ['192.0.2.0/24'],
  };
}

export function createState(input: StateInput = {}): State {
  return {
    leader: input.leader ?? false,
    config: input.config ?? {},
    relations: input.relations ?? [],
    secrets: input.secrets ?? [],
    networks: input.networks ?? {},
    openedPorts: input.openedPorts ?? [],
    unitStatus: input.unitStatus ?? { status: 'unknown', message: '' },
    appStatus: input.appStatus ?? { status: 'unknown', message: '' },
    workloadVersion: input.workloadVersion ?? '',
    storedState: input.storedState ?? {},
    model: input.model ?? DEFAULT_MODEL,
    resources: input.resources ?? {},
  };
}

/** The latest revision number of a secret. */
export function latestRevision(secret: SecretState): number {
  const numbers = Object.keys(secret.revisions).map(Number);
  return numbers.length === 0 ? 0 : Math.max(...numbers);
}

/** Returns a copy of the State with one relation replaced (matched by id). */
export function withRelation(state: State, relation: RelationState): State {
  return { ...state, relations: state.relations.map((item) => (item.id === relation.id ? relation : item)) };
}

export function findRelation(state: State, endpoint: string): RelationState | undefined {
  return state.relations.find((relation) => relation.endpoint === endpoint);
}

export function findSecret(state: State, id: string): SecretState | undefined {
  return state.secrets.find((secret) => secret.id === id);
}
