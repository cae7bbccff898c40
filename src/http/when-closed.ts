// Work tied to a request's life: released once its answer is sent or its client went away, even when that happened
// before the work was set up (a client gone during an asynchronous hook never emits 'close' again).
import type { FastifyReply } from 'fastify';

/** Runs `fn` once the answer is sent or the client went away; at once when that has already happened. */
export function whenClosed(reply: FastifyReply, fn: () => void): void {
  if (reply.raw.closed || reply.raw.destroyed) fn();
  else reply.raw.once('close', fn);
}
