// `k8s enable` and `k8s disable`: one change of <feature>.enabled per named feature.
import { Args, Flags } from '@oclif/core';
import { FEATURE_NAMES } from '../../config/features.js';
import { K8sCommand, parseDuration, timeoutFlag } from '../base.js';

export abstract class FeatureToggle extends K8sCommand {
  protected abstract readonly enable: boolean;

  protected async toggle(names: string[], wait: boolean, timeout: string): Promise<void> {
    for (const n of names) {
      if (!(FEATURE_NAMES as readonly string[]).includes(n)) this.error(`unknown feature "${n}"; known features: ${FEATURE_NAMES.join(', ')}`, { exit: 1 });
    }
    const client = this.client();
    await client.setClusterConfig(Object.fromEntries(names.map((n) => [`${n}.enabled`, this.enable])));
    const verb = this.enable ? 'enabled' : 'disabled';
    if (!wait) {
      this.log(`${names.join(', ')} ${verb}; "k8s status" shows when ${names.length > 1 ? 'they are' : 'it is'} ready`);
      return;
    }
    const deadline = Date.now() + parseDuration(timeout, 'timeout');
    for (;;) {
      const st = await client.status();
      const pending = st.features.filter((f) => names.includes(f.name) && !(f.enabled === this.enable && f.ready));
      if (!pending.length) break;
      if (Date.now() > deadline) this.error(`not ${verb} in time: ${pending.map((f) => `${f.name} (${f.message})`).join(', ')}`, { exit: 1 });
      await new Promise((r) => setTimeout(r, 1000));
    }
    this.log(`${names.join(', ')} ${verb}`);
  }
}

export const toggleArgs = { features: Args.string({ description: `features: ${FEATURE_NAMES.join(', ')}`, required: true }) };
export const toggleFlags = {
  wait: Flags.boolean({ description: 'wait until the change has been carried out', default: true, allowNo: true }),
  timeout: timeoutFlag,
};
