import { Layout } from '../../layout.js';
import { nodeImages } from '../../services/images.js';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class ListImages extends K8sCommand {
  static override summary = 'List the images a node needs';
  static override description = 'The images are side-loaded from $SNAP_COMMON/images: no registry is needed.';
  static override examples = ['<%= config.bin %> list-images'];
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(ListImages);
    const l = new Layout();
    const images = nodeImages(l);
    await this.render(images, flags['output-format'] as OutputFormat, () => images.join('\n'));
  }
}
