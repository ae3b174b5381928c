// The process entry of a packed charm: read the Juju environment, run the charm with
// the real hook tools, and exit non-zero on an uncaught error so Juju retries the hook.
import { runCharm, type Charm } from './charm.js';
import { ExecaHookTools } from './execa-hooktools.js';
import type { HookTools } from './hooktools.js';
import { readJujuContext } from './juju-context.js';

export interface DispatchOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly tools?: HookTools;
  readonly stderr?: (line: string) => void;
}

/** Returns the process exit code. */
export async function dispatch(charm: Charm, options: DispatchOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  let context;
  try {
    context = readJujuContext(env);
  } catch (error) {
    stderr(error instanceof Error ? error.message : String(error));
    return 2;
  }
  const tools = options.tools ?? new ExecaHookTools({ env });
  try {
    await runCharm(charm, context, tools);
    return 0;
  } catch (error) {
    const message = `${context.unitName} ${context.dispatchPath} failed: ${error instanceof Error ? error.message : String(error)}`;
    stderr(error instanceof Error && error.stack ? error.stack : message);
    try {
      await tools.jujuLog('ERROR', message);
    } catch {
      // The log is best effort; the exit code is what makes Juju retry.
    }
    return 1;
  }
}
