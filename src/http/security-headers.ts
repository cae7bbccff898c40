// Response headers every answer carries, and those that keep login secrets (QR codes, pairing codes) out of caches.
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Routes whose answers may carry a login secret, a webhook secret, an agent's data or a user's file: never stored by a
 * browser or a proxy.
 */
const NO_STORE = /^\/(sessions|agents|sandbox|events|webhooks|media)(\/|$)/;

/**
 * An onRequest hook: headers set this early stay on every answer, errors and 404s included. The dashboard and the
 * docs keep their own Content-Security-Policy; /docs only gets the frame protection added here.
 */
export function setSecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-content-type-options', 'nosniff');
  // No page of this service is meant to be framed (clickjacking of the docs' "Authorize" or the dashboard).
  reply.header('x-frame-options', 'DENY');
  const route = request.routeOptions.url;
  if (route === undefined) return;
  if (NO_STORE.test(route)) reply.header('cache-control', 'no-store');
  else if (route === '/docs' || route.startsWith('/docs/')) {
    reply.header('content-security-policy', "frame-ancestors 'none'");
  }
}
