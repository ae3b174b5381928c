// Advice names commands as this install runs them. In the snap (SNAP and SNAP_COMMON set by snapd):
// `sudo k8s …`, `sudo snap start k8s.k8sd`, the service journal. In a dev checkout: `sudo bin/k8s …`,
// `npm start`, `npm stop`, `npm run reset` and the node's log files, with K8S_ROOT when the node is
// re-rooted. Every message that tells the user what to run takes its commands from here.
import path from 'node:path';
import { installRoot, Layout } from './layout.js';

export type InstallKind = 'snap' | 'dev';

export interface InstallAdvice {
  readonly kind: InstallKind;
  /** How to run `k8s <args>` (as root) on this install. */
  k8s(args: string): string;
  /** How to start k8sd. */
  readonly startK8sd: string;
  /** How to stop k8sd and the services it runs. */
  readonly stopK8sd: string;
  /** How to stop the node and remove everything it left on the host. */
  readonly resetNode: string;
  /** Where k8sd's log is read. */
  readonly k8sdLog: string;
}

/**
 * `cwd` decides how the dev launcher is named: `bin/k8s` inside the checkout, its absolute path
 * elsewhere.
 */
export function installAdvice(layout: Layout = new Layout(), cwd: string = process.cwd()): InstallAdvice {
  if (layout.inSnap) {
    return {
      kind: 'snap',
      k8s: (args) => `sudo k8s ${args}`,
      startK8sd: 'sudo snap start k8s.k8sd',
      stopK8sd: 'sudo snap stop k8s',
      resetNode: 'sudo snap stop k8s, then sudo k8s x-cleanup',
      k8sdLog: `sudo snap logs -n 100 k8s.k8sd (or ${layout.log('k8sd')})`,
    };
  }
  // sudo resets the environment, so a re-rooted node's K8S_ROOT goes after it.
  const env = layout.root === '/' ? '' : `K8S_ROOT=${layout.root} `;
  const inCheckout = !path.relative(installRoot, cwd).startsWith('..');
  const launcher = inCheckout ? 'bin/k8s' : path.join(installRoot, 'bin', 'k8s');
  const npm = (script: string): string => `sudo ${env}npm ${inCheckout ? '' : `--prefix ${installRoot} `}${script}`;
  return {
    kind: 'dev',
    k8s: (args) => `sudo ${env}${launcher} ${args}`,
    startK8sd: npm('start'),
    stopK8sd: npm('stop'),
    resetNode: npm('run reset'),
    k8sdLog: layout.log('k8sd'),
  };
}

/**
 * Messages (most from k8sd, which cannot know how the user runs the CLI) quote commands in one
 * form, "k8s <command> …". The CLI says them the way this install runs them.
 */
export function adviseForInstall(message: string, advice: InstallAdvice = installAdvice()): string {
  return message.replace(/(["`])k8s ([a-z][^"`]*)\1/g, (_, quote: string, args: string) => `${quote}${advice.k8s(args)}${quote}`);
}
