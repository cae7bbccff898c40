// POST /agents/{agentId}/run: the AI pipeline on demand.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Auth } from '../auth/auth.hooks.js';
import { RUN_BODY_LIMIT } from '../http/body-limits.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import { runBody, runResultSchema } from './run.schemas.js';
import type { RunService } from './run.service.js';

export interface RunRoutesOptions {
  run: RunService;
  auth: Auth;
}

export const runRoutes: FastifyPluginAsyncZod<RunRoutesOptions> = async (app, { run, auth }) => {
  app.post(
    '/agents/:agentId/run',
    {
      onRequest: auth.agent(),
      bodyLimit: RUN_BODY_LIMIT,
      schema: {
        tags: ['agents'],
        security: [{ bearerAuth: [] }],
        summary: "Ask the agent's AI backend and send its reply to session_id",
        params: agentParams,
        body: runBody,
        response: { 200: envelope(runResultSchema), ...errorResponses(400, 401, 403, 404, 413, 429, 502, 504) },
      },
    },
    async (request) => ({
      data: await run.run(request.params.agentId, request.body, request.id),
      traceId: request.id,
    }),
  );
};
