// Typed errors of the charm runtime. Each message says what went wrong and what to do about it.

export class CharmRuntimeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A JUJU_* variable the dispatch needs is missing or malformed. */
export class JujuEnvironmentError extends CharmRuntimeError {
  constructor(readonly variable: string, problem: string) {
    super(
      `${variable} ${problem}: dispatch must run inside a Juju hook context ` +
        `(for a manual run use 'juju exec --unit <unit> -- JUJU_DISPATCH_PATH=update_status ./dispatch')`,
    );
  }
}

/** JUJU_DISPATCH_PATH does not name a hook, an action or an out-of-band event. */
export class DispatchPathError extends CharmRuntimeError {
  constructor(readonly dispatchPath: string) {
    super(
      `cannot dispatch '${dispatchPath}': expected 'hooks/<hook>', 'actions/<action>' or a bare event name such as 'update_status'`,
    );
  }
}

/** A hook tool exited non-zero (the real tool, or the in-memory one refusing an access rule). */
export class HookToolError extends CharmRuntimeError {
  constructor(
    readonly tool: string,
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    const detail = stderr.trim() || 'no error output';
    super(`hook tool '${tool}' failed (exit ${exitCode ?? 'unknown'}): ${detail}`);
  }
}

/** A hook tool printed something that is not the JSON it documents. */
export class HookToolOutputError extends CharmRuntimeError {
  constructor(readonly tool: string, readonly output: string, expected: string) {
    const shown = output.length > 200 ? `${output.slice(0, 200)}…` : output;
    super(`hook tool '${tool}' printed ${JSON.stringify(shown)}, expected ${expected}; is the Juju agent older than 3.3?`);
  }
}

/** The charm tried to write relation data it does not own. Juju refuses the same write. */
export class RelationDataAccessError extends CharmRuntimeError {}

/** The charm asked for a secret it may not read or change. */
export class SecretAccessError extends CharmRuntimeError {}

/** A config option has a type or value the charm cannot use. */
export class ConfigError extends CharmRuntimeError {
  constructor(readonly option: string, problem: string) {
    super(`config option '${option}' ${problem}`);
  }
}

/** An action was called with missing or wrong parameters. */
export class ActionParamsError extends CharmRuntimeError {}
