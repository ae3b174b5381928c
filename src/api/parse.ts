// Parsing request bodies with their endpoint's schema: the daemon's side of src/api. Kept apart
// from the endpoint definitions so that the CLI and the client, which only need methods and
// paths, never load zod (about 45 ms of CPU at every `k8s` command).
import { z } from 'zod';
import { Endpoint, RequestBodyError } from './endpoint.js';

const schemas = new WeakMap<object, z.ZodType>();

function schemaOf<Req extends z.ZodType>(e: Endpoint<Req, unknown>): Req {
  let s = schemas.get(e) as Req | undefined;
  if (!s) {
    s = e.request(z);
    schemas.set(e, s);
  }
  return s;
}

/** Parses a request body with its endpoint's schema; the error names the first offending field. */
export function parseRequest<Req extends z.ZodType>(e: Endpoint<Req, unknown>, body: unknown): z.output<Req> {
  const result = schemaOf(e).safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length ? issue.path.map(String).join('.') : '(body)';
  const what = issue ? issue.message : 'does not match the request schema';
  throw new RequestBodyError(field, `malformed request to ${e.method} ${e.path}: field "${field}": ${what}`);
}
