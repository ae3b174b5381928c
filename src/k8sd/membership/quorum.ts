// When is it safe to remove an etcd member? Pure functions, so the rule is easy to read and test.
//
// Rule: removing a voter is refused (unless --force) when
//   1. no voter would remain (it is the last control-plane node), or
//   2. the current cluster cannot commit the change: healthy voters < majority(V), or
//   3. the cluster left behind would not have quorum: healthy remaining voters < majority(V - 1).
// Removing a learner, or a node that is not an etcd member (a worker), never affects quorum.
// Example: 3 voters, one dead. Removing the dead one leaves 2 healthy of 2: allowed. Removing a
// healthy one leaves 1 healthy of 2: refused, since the survivors could no longer write.

export interface VoterHealth {
  name: string;
  voter: boolean;
  healthy: boolean;
}

export type RemovalVerdict =
  | { safe: true; reason?: undefined }
  | { safe: false; reason: string; lastNode?: boolean };

export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export function removalSafety(members: VoterHealth[], target: string): RemovalVerdict {
  const t = members.find((m) => m.name === target);
  if (!t || !t.voter) return { safe: true };
  const voters = members.filter((m) => m.voter);
  const healthyNow = voters.filter((m) => m.healthy).length;
  const remaining = voters.filter((m) => m.name !== target);
  const healthyLeft = remaining.filter((m) => m.healthy).length;
  if (remaining.length === 0) {
    return { safe: false, lastNode: true, reason: `"${target}" is the last control-plane node; removing it ends the cluster` };
  }
  if (healthyNow < majority(voters.length)) {
    return {
      safe: false,
      reason: `the datastore has lost quorum (${healthyNow} of ${voters.length} voters healthy, ${majority(voters.length)} needed), so it cannot record the removal`,
    };
  }
  if (healthyLeft < majority(remaining.length)) {
    const unhealthy = remaining.filter((m) => !m.healthy).map((m) => m.name);
    return {
      safe: false,
      reason:
        `removing "${target}" would leave ${remaining.length} voters of which only ${healthyLeft} ${healthyLeft === 1 ? 'is' : 'are'} healthy ` +
        `(${majority(remaining.length)} needed for quorum${unhealthy.length ? `; unhealthy: ${unhealthy.join(', ')}` : ''}); ` +
        'bring the unhealthy nodes back or remove them first',
    };
  }
  return { safe: true };
}
