import { existsSync } from 'node:fs';
import { K8sCommand } from '../base.js';

export default class Kubectl extends K8sCommand {
  static override summary = 'Run the bundled kubectl with the admin kubeconfig';
  static override examples = ['<%= config.bin %> kubectl get nodes', '<%= config.bin %> kubectl -n kube-system get pods'];
  static override strict = false;
  // Every flag belongs to kubectl.
  static override flags = {};

  async run(): Promise<void> {
    const argv = this.argv;
    const kubectl = this.layout.componentBinary('kubernetes', 'kubectl');
    const { assertComponents } = await import('../../services/binaries.js');
    try {
      assertComponents(this.layout, [['kubernetes', 'kubectl']]);
    } catch (err) {
      this.error((err as Error).message, { exit: 1 });
    }
    const admin = this.layout.kubeconfig('admin.conf');
    const kubeconfig = existsSync(admin) ? admin : this.layout.kubeconfig('kubelet.conf');
    const { execa } = await import('execa');
    const r = await execa(kubectl, argv, { env: { KUBECONFIG: kubeconfig, GODEBUG: this.layout.goDebug(process.env.GODEBUG) }, stdio: 'inherit', reject: false });
    this.exit(r.exitCode ?? 1);
  }
}
