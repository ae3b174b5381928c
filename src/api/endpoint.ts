// The shape of one k8sd API endpoint: its method and path, the schema its request body is parsed
// with, and (as a type only) what its reply carries. Routes and the client are both built from these.
import type { z } from 'zod';

/** zod itself, handed to each endpoint's schema builder: only the daemon, which parses bodies, loads it. */
export type Zod = typeof z;

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface Endpoint<Req extends z.ZodType, Res> {
  readonly method: Method;
  readonly path: string;
  /** Builds the schema request bodies are parsed with (src/api/parse.ts); the client never calls it. */
  readonly request: (z: Zod) => Req;
  /** The reply is a stream of progress events (NDJSON) that ends with `done` carrying Res, or `error`. */
  readonly streams: boolean;
  /** Type only, never set: the reply's metadata. */
  readonly response?: Res;
}

/** What the client sends to `E` (before defaults are applied). */
export type RequestOf<E> = E extends Endpoint<infer Req, unknown> ? z.input<Req> : never;
/** What a route of `E` receives after parsing. */
export type ParsedRequestOf<E> = E extends Endpoint<infer Req, unknown> ? z.output<Req> : never;
/** What `E` replies with. */
export type ResponseOf<E> = E extends Endpoint<z.ZodType, infer Res> ? Res : never;

/** GET endpoints and POSTs without parameters: no body (the server sees `{}`). */
export const noBody = (zod: Zod) => zod.object({});

/** endpoint<Reply>()({ method, path, request }): the reply type is given, the request type is the schema's. */
export function endpoint<Res>(): <Req extends z.ZodType>(e: { method: Method; path: string; request: (z: Zod) => Req; streams?: boolean }) => Endpoint<Req, Res> {
  return (e) => ({ method: e.method, path: e.path, request: e.request, streams: e.streams ?? false });
}

/** A request body that does not match its endpoint's schema; k8sd answers 400 with this message. */
export class RequestBodyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'RequestBodyError';
  }
}
