// One lock per node for the operations that change what the node is: bootstrap, join, removal,
// snapshot restore, CA rotation (orchestrating one, or applying a phase for another node) and
// encryption key rotation. Two of them at once could leave the node half one and half the other,
// so the second is refused at once (409) with the name of the one that runs; nothing waits.
import { ApiError } from './http.js';

export type NodeOperation = 'bootstrap' | 'join' | 'removal' | 'snapshot restore' | 'CA rotation' | 'key rotation';

export class NodeBusyError extends ApiError {
  constructor(
    readonly running: NodeOperation,
    readonly refused: NodeOperation,
  ) {
    super(409, `a ${running} is in progress on this node; run the ${refused} again when it has finished`);
    this.name = 'NodeBusyError';
  }
}

export class NodeOperationLock {
  private current: NodeOperation | undefined;

  /** The operation that holds the lock, if any. */
  get held(): NodeOperation | undefined {
    return this.current;
  }

  /** Throws NodeBusyError while another operation holds the lock; takes nothing. */
  check(operation: NodeOperation): void {
    if (this.current) throw new NodeBusyError(this.current, operation);
  }

  /** Takes the lock (or throws NodeBusyError); call the returned function, once, to release it. */
  acquire(operation: NodeOperation): () => void {
    this.check(operation);
    this.current = operation;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.current = undefined;
    };
  }

  /** Runs `f` under the lock. */
  async run<T>(operation: NodeOperation, f: () => Promise<T>): Promise<T> {
    const release = this.acquire(operation);
    try {
      return await f();
    } finally {
      release();
    }
  }
}
