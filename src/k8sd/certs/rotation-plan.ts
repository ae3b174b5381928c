// The plan of an online CA rotation across the cluster, as pure functions of the rotation record
// (datastore/state.ts): which CA set each phase installs, in which order the nodes get it, and
// what is left to do when a rotation that stopped is run again.
//  trust:   old CA first, new CA trusted next to it;
//  reissue: new CA first (leaves are issued by it), old CA still trusted, and the new server CA
//           cross-signed by the old one sent after serving leaves;
//  retire:  the new CA alone.
import { CaRotationPhase, CaRotationRecord } from '../../datastore/state.js';
import { CaMaterial } from '../../pki/signer.js';
import { CaName, ROTATED_CAS } from '../../pki/table.js';

export const ROTATION_PHASES: readonly CaRotationPhase[] = ['trust', 'reissue', 'retire'];

export interface RotationMember {
  name: string;
  role: 'control-plane' | 'worker';
}

export interface RotationStep {
  phase: CaRotationPhase;
  node: RotationMember;
}

/** The CA set a phase stores in the datastore and installs on every node; `current` supplies the CAs the rotation keeps. */
export function caSetFor(
  phase: CaRotationPhase,
  r: Pick<CaRotationRecord, 'old' | 'fresh' | 'crossSignedCa' | 'crossSignedKubeletCa'>,
  current: Record<CaName, CaMaterial>,
): Record<CaName, CaMaterial> {
  const out = { ...current };
  // Serving leaves of these CAs are sent with the new CA cross-signed by the old one during reissue.
  const chains: Partial<Record<CaName, string>> = { ca: r.crossSignedCa, ...(r.crossSignedKubeletCa ? { 'kubelet-ca': r.crossSignedKubeletCa } : {}) };
  for (const name of ROTATED_CAS) {
    const old = r.old[name];
    const fresh = r.fresh[name];
    // A rotation recorded before this CA existed leaves it as it is.
    if (!old || !fresh) continue;
    const chain = chains[name];
    if (phase === 'trust') out[name] = { cert: old.cert, key: old.key!, extraTrust: [fresh.cert] };
    else if (phase === 'reissue') out[name] = { cert: fresh.cert, key: fresh.key!, extraTrust: [old.cert], ...(chain ? { chain: [chain] } : {}) };
    else out[name] = { cert: fresh.cert, key: fresh.key! };
  }
  return out;
}

/** Control-plane nodes first (the orchestrating one before the others), then workers; by name within each. */
export function rotationOrder(members: RotationMember[], orchestrator: string): RotationMember[] {
  const rank = (m: RotationMember): number => (m.name === orchestrator ? 0 : m.role === 'control-plane' ? 1 : 2);
  return [...members].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** Every (phase, node) still to do: the recorded phase on the nodes that have not finished it, then the later phases on all. */
export function remainingSteps(r: Pick<CaRotationRecord, 'phase' | 'done'>, members: RotationMember[], orchestrator: string): RotationStep[] {
  const order = rotationOrder(members, orchestrator);
  const steps: RotationStep[] = [];
  for (const phase of ROTATION_PHASES.slice(ROTATION_PHASES.indexOf(r.phase))) {
    for (const node of order) if (phase !== r.phase || !r.done.includes(node.name)) steps.push({ phase, node });
  }
  return steps;
}

/** The record after `node` finished `phase` (moving the record on to that phase when it is the next one). */
export function recordDone(r: CaRotationRecord, phase: CaRotationPhase, node: string): CaRotationRecord {
  const done = phase === r.phase ? r.done : [];
  const { lastError: _cleared, ...rest } = r;
  return { ...rest, phase, done: done.includes(node) ? done : [...done, node] };
}

/** The record after a phase started: the phase is recorded before any node applies it. */
export function recordPhase(r: CaRotationRecord, phase: CaRotationPhase): CaRotationRecord {
  return phase === r.phase ? r : { ...r, phase, done: [] };
}
