// The test-side API: declare a State, run an event, inspect the State that comes out.
export { Context, ActionFailed, InconsistentStateError, UncaughtCharmError, type ContextOptions } from './context.js';
export { on, type TestEvent, type HookTestEvent, type ActionTestEvent } from './events.js';
export { MemoryHookTools, type LogRecord } from './memory-hooktools.js';
export {
  createState,
  defaultNetwork,
  findRelation,
  findSecret,
  latestRevision,
  withRelation,
  type Bag,
  type RelationState,
  type SecretState,
  type State,
  type StateInput,
  type StatusState,
} from './state.js';
