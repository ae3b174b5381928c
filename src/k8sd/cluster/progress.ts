// Long operations (bootstrap, join, CA rotation) answer with a stream of progress events, one JSON
// object a line (NDJSON), ending with {type: "done", metadata} or {type: "error", error}.
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';

/** Streams `run`'s events to the client; ends with its result as "done", or its failure as "error". Never throws. */
export async function streamProgress<E extends object>(res: ServerResponse, log: Logger, what: string, run: (emit: (e: E) => void) => Promise<unknown>): Promise<undefined> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const write = (e: object): void => {
    res.write(JSON.stringify(e) + '\n');
  };
  try {
    write({ type: 'done', metadata: await run(write) });
  } catch (err) {
    const error = (err as Error).message;
    log.error(`${what} failed`, { error });
    write({ type: 'error', error });
  } finally {
    res.end();
  }
  return undefined;
}
