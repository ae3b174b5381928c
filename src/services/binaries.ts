// The component binaries a node needs: present, and in FIPS mode built with Go's FIPS 140-3
// module. One check shared by bootstrap, both joins, the supervisor and the CLI.
import { existsSync } from 'node:fs';
import { GoBuildInfoError, goFipsModule } from '../crypto/go-buildinfo.js';
import { GO_COMPONENTS, Layout } from '../layout.js';

/** [component recipe, binary] */
export type ComponentBinary = readonly [component: string, binary: string];

export class ComponentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComponentError';
  }
}

const fipsVerified = new Map<string, string>();

/**
 * The GOFIPS140 module of a Go component binary; throws ComponentError when FIPS mode is on and
 * the binary lacks it (GODEBUG=fips140=on alone would run the default, unvalidated module).
 */
export function verifyGoFips(layout: Layout, component: string, file: string): string | undefined {
  if (!layout.fipsMode || !GO_COMPONENTS.has(component)) return undefined;
  const cached = fipsVerified.get(file);
  if (cached) return cached;
  let module: string | undefined;
  try {
    module = goFipsModule(file);
  } catch (err) {
    if (err instanceof GoBuildInfoError) throw new ComponentError(`FIPS mode: cannot tell whether ${err.message}; refusing to run it`);
    throw err;
  }
  if (!module) {
    throw new ComponentError(
      `FIPS mode: ${file} was built without Go's FIPS 140-3 module (no GOFIPS140 build setting); refusing to run it. ` +
        `Use the FIPS build: ${layout.componentBuildHint(component)}`,
    );
  }
  fipsVerified.set(file, module);
  return module;
}

/** Throws a ComponentError naming every missing or (in FIPS mode) non-FIPS binary and how to build it. */
export function assertComponents(layout: Layout, binaries: readonly ComponentBinary[]): void {
  const missing = binaries.filter(([c, b]) => !existsSync(layout.componentBinary(c, b)));
  if (missing.length) {
    const hints = [...new Set(missing.map(([c]) => layout.componentBuildHint(c)))];
    throw new ComponentError(`component binaries are missing: ${missing.map(([c, b]) => layout.componentBinary(c, b)).join(', ')}; ${hints.join('; ')}`);
  }
  for (const [c, b] of binaries) verifyGoFips(layout, c, layout.componentBinary(c, b));
}
