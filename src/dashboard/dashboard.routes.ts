// Serves the operator dashboard: static HTML, CSS and ES modules, no build step, nothing from a CDN.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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

/**
 * Third-party files the page loads, served from this origin under /dashboard/vendor/: the installed package's own
 * files, found the way Node resolves the package (so an upgrade is picked up, and nothing is copied or fetched).
 */
export const VENDOR_FILES: Record<string, { module: string; type: string }> = {
  'uPlot.esm.js': { module: 'uplot/dist/uPlot.esm.js', type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { module: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};

/** Every file of the page: revalidated every time (ETag), so a deploy shows at once (the files are small). */
const DASHBOARD_HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface VendorFile {
  body: Buffer;
  type: string;
  etag: string;
}

async function loadVendorFiles(): Promise<Map<string, VendorFile>> {
  const files = new Map<string, VendorFile>();
  for (const [name, { module, type }] of Object.entries(VENDOR_FILES)) {
    const body = await readFile(fileURLToPath(import.meta.resolve(module)));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    files.set(name, { body, type, etag });
  }
  return files;
}

export interface DashboardRoutesOptions {
  /** The folder to serve; the repository's public/dashboard by default. */
  root?: string;
}

export const dashboardRoutes: FastifyPluginAsync<DashboardRoutesOptions> = async (app, options) => {
  const root = options.root ?? DASHBOARD_ROOT;
  if (!existsSync(`${root}/index.html`)) throw new Error(`dashboard: no index.html in ${root}`);
  app.get('/dashboard', { schema: { hide: true } }, (_request, reply) => reply.redirect('/dashboard/', 301));
  const vendor = await loadVendorFiles();
  app.get<{ Params: { file: string } }>('/dashboard/vendor/:file', { schema: { hide: true } }, (request, reply) => {
    const file = vendor.get(request.params.file);
    if (!file) return reply.callNotFound();
    reply.headers(DASHBOARD_HEADERS).header('etag', file.etag).type(file.type);
    if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
    return reply.send(file.body);
  });
  await app.register(fastifyStatic, {
    root,
    prefix: '/dashboard/',
    decorateReply: false,
    dotfiles: 'ignore',
    cacheControl: false,
    setHeaders(res) {
      for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) res.setHeader(name, value);
    },
  });
};
