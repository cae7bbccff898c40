// Serves the operator dashboard: static HTML, CSS and ES modules, no build step, nothing from a CDN.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * `public/dashboard/` at the repository root. This module runs as src/dashboard/*.ts under tsx and as
 * dist/dashboard/*.js after `tsc`; both sit two levels below the root, so one relative URL finds the folder.
 */
export const DASHBOARD_ROOT = fileURLToPath(new URL('../../public/dashboard/', import.meta.url));

/** The page only talks to this origin; QR codes arrive as data: URLs. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface DashboardRoutesOptions {
  /** The folder to serve; the repository's public/dashboard by default. */
  root?: string;
}

export const dashboardRoutes: FastifyPluginAsync<DashboardRoutesOptions> = async (app, options) => {
  const root = options.root ?? DASHBOARD_ROOT;
  if (!existsSync(`${root}/index.html`)) throw new Error(`dashboard: no index.html in ${root}`);
  app.get('/dashboard', { schema: { hide: true } }, (_request, reply) => reply.redirect('/dashboard/', 301));
  await app.register(fastifyStatic, {
    root,
    prefix: '/dashboard/',
    decorateReply: false,
    dotfiles: 'ignore',
    cacheControl: false,
    setHeaders(res) {
      // Revalidate every time (ETag), so a deploy shows at once; the files are small.
      res.setHeader('cache-control', 'no-cache');
      res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('referrer-policy', 'no-referrer');
    },
  });
};
