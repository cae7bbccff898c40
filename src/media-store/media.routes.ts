// GET /media/{id}: a stored inbound file behind a signed, expiring link (no other authentication).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { FORWARDED_BY } from '../cluster/forward.js';
import { errorResponses } from '../http/schemas.js';
import { contentDisposition, type MediaFiles } from './media-files.js';
import { safeMimeType } from './media-store.js';

export interface MediaRoutesOptions {
  files: MediaFiles;
}

export const mediaRoutes: FastifyPluginAsyncZod<MediaRoutesOptions> = async (app, { files }) => {
  app.get(
    '/media/:id',
    {
      // The request line carries the link's signature, a bearer credential while it lasts: not logged at info.
      logLevel: 'warn',
      schema: {
        tags: ['media'],
        summary:
          "An inbound message's file, as the AI request's attachment `url` links to it; the link's signature is its only key, and it expires",
        params: z.object({
          id: z
            .string()
            .min(1)
            .max(64)
            .regex(/^[0-9a-z]+$/, 'must be a media id'),
        }),
        querystring: z.object({
          expires: z.coerce
            .number()
            .int()
            .min(0)
            .describe('Seconds since the epoch after which the link stops working'),
          sig: z.string().min(1).max(128).describe('The link signature (HMAC-SHA256)'),
        }),
        produces: ['application/octet-stream'],
        response: { 200: z.any().describe('The file, as it was received'), ...errorResponses(400, 403, 404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { expires, sig } = request.query;
      const file = await files.open({ id, expires, sig }, request.headers[FORWARDED_BY] !== undefined);
      return reply
        .header('content-type', safeMimeType(file.mimeType))
        .header('content-length', String(file.size))
        .header('content-disposition', contentDisposition(file.filename))
        .header('cache-control', 'private, no-store')
        .header('content-security-policy', "sandbox; default-src 'none'")
        .send(file.stream);
    },
  );
};
