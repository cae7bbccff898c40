// GET /cluster (admin): the members, with their heartbeat age, capacity and owned sessions.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../auth/auth.hooks.js';
import { envelope, errorResponses } from '../http/schemas.js';
import type { Cluster } from './cluster.js';

export interface ClusterRoutesOptions {
  cluster: Pick<Cluster, 'instanceId' | 'single' | 'members'>;
  auth: Auth;
}

const memberSchema = z.object({
  instanceId: z.string(),
  url: z.string().nullable().describe('How peers reach it (INSTANCE_URL)'),
  maxSessions: z.number().int().nullable().describe('MAX_SESSIONS, when set'),
  heartbeatAgeMs: z.number().describe('Milliseconds since its last heartbeat, by the database clock'),
  live: z.boolean().describe('Heartbeat within LEASE_TTL_MS; a gone member stays listed for about a minute'),
  sessions: z.number().int().describe('Sessions whose lease it holds now'),
  self: z.boolean().describe('The member that answered'),
});

export const clusterViewSchema = z.object({
  self: z.string().describe('INSTANCE_ID of the member that answered'),
  single: z.boolean().describe('One process owns every session (embedded database)'),
  members: z.array(memberSchema),
});

export const clusterRoutes: FastifyPluginAsyncZod<ClusterRoutesOptions> = async (app, { cluster, auth }) => {
  app.get(
    '/cluster',
    {
      onRequest: auth.admin(),
      schema: {
        tags: ['cluster'],
        security: [{ bearerAuth: [] }],
        summary: 'The cluster members: heartbeat age, capacity and owned sessions',
        response: { 200: envelope(clusterViewSchema), ...errorResponses(401, 403, 429) },
      },
    },
    async (request) => ({
      data: { self: cluster.instanceId, single: cluster.single, members: await cluster.members() },
      traceId: request.id,
    }),
  );
};
