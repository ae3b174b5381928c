import { existsSync } from 'node:fs';
import { K8sCommand } from '../base.js';

export default class Kubectl extends K8sCommand {
  static override description = 'Run the bundled kubectl with the admin kubeconfig';
  static override examples = ['<%= config.bin %> kubectl get nodes', '<%= config.bin %> kubectl -n kube-system get pods'];
  static override strict = false;
  // Every flag belongs to kubectl.
  static override flags = {};

  async run(): Promise<void> {
    const argv = this.argv;
    const kubectl = this.layout.componentBinary('kubernetes', 'kubectl');
    if (!existsSync(kubectl)) this.error(`kubectl is not installed at ${kubectl}; build the components with snap/components/build-all.sh`, { exit: 1 });
    const admin = this.layout.kubeconfig('admin.conf');
    const kubeconfig = existsSync(admin) ? admin : this.layout.kubeconfig('kubelet.conf');
    const { execa } = await import('execa');
    const r = await execa(kubectl, argv, { env: { KUBECONFIG: kubeconfig }, stdio: 'inherit', reject: false });
    this.exit(r.exitCode ?? 1);
  }
}
