// GET /agents/{agentId}/activity: the agent's messages and AI latency per minute, for the dashboard's chart.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Auth } from '../auth/auth.hooks.js';
import { AppError } from '../errors.js';
import { agentParams, envelope, errorResponses } from '../http/schemas.js';
import type { ActivityRepository } from './activity.repository.js';
import { activityQuery, activitySchema } from './activity.schemas.js';

export interface ActivityRoutesOptions {
  activity: Pick<ActivityRepository, 'perMinute'>;
  auth: Auth;
}

export const activityRoutes: FastifyPluginAsyncZod<ActivityRoutesOptions> = async (app, { activity, auth }) => {
  app.get(
    '/agents/:agentId/activity',
    {
      onRequest: auth.agent(),
      schema: {
        tags: ['chats'],
        security: [{ bearerAuth: [] }],
        summary:
          'Messages sent, received and failed, and the AI latency, per minute over the last `minutes` (60), oldest first',
        params: agentParams,
        querystring: activityQuery,
        response: { 200: envelope(activitySchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const found = await activity.perMinute(request.params.agentId, request.query.minutes);
      if (!found) throw new AppError('SESSION_NOT_FOUND');
      return { data: found, traceId: request.id };
    },
  );
};
