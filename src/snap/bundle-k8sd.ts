// Build step (npm run build, bin/dev-setup, the snap's k8s part): bundles k8sd into one minified
// file, dist/k8sd/main.js, in place of tsc's entry module of the same name (bin/k8sd runs it, and
// `runningK8sd` recognises k8sd by that path in its command line).
//
// Why (issue 17, docs/performance.md "session 8"): V8 keeps the source of every loaded module in
// memory for as long as the process lives. Unbundled, k8sd held ~25 MB of JavaScript source, most
// of it @kubernetes/client-node's generated API groups, of which it uses four; the bundle keeps only
// what k8sd reaches (src/k8sd/kube-api.ts names the client-node exports) and is ~4 MB. The CLI is not
// bundled: it loads only the modules of one command (oclif.manifest.json).
//
// The source map (dist/k8sd/main.js.map) is written beside it and not loaded at run time; to read a
// stack trace with the TypeScript file and line, run k8sd with NODE_OPTIONS=--enable-source-maps.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installRootOf } from '../layout.js';

export const K8SD_ENTRY = 'src/k8sd/main.ts';
export const K8SD_BUNDLE = 'dist/k8sd/main.js';

export async function bundleK8sd(project: string): Promise<{ bytes: number }> {
  const result = await build({
    absWorkingDir: project,
    entryPoints: [K8SD_ENTRY],
    outfile: K8SD_BUNDLE,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    // Class and function names stay: error names are compared and shown (new.target.name).
    keepNames: true,
    // Licence comments go to dist/k8sd/main.js.LEGAL.txt instead of the end of the bundle.
    legalComments: 'external',
    sourcemap: 'linked',
    sourcesContent: false,
    // The CommonJS packages in the bundle (winston, grpc, ...) call require() for Node's built-ins.
    banner: { js: "import { createRequire as __k8sdCreateRequire } from 'node:module'; const require = __k8sdCreateRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'warning',
  });
  const output = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith('main.js'));
  return { bytes: output?.[1].bytes ?? 0 };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const project = installRootOf(fileURLToPath(import.meta.url));
  const { bytes } = await bundleK8sd(project);
  process.stdout.write(`${K8SD_BUNDLE}: ${(bytes / 1e6).toFixed(1)} MB\n`);
}
