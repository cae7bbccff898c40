// Request and response schemas of POST /agents/{agentId}/run.
import { z } from 'zod';

const sessionIdField = z.union([z.string().trim().min(1).max(128), z.number().int().nonnegative()]);

/** Loose: every field beyond these is passed to the AI backend unchanged (openai_api_key, rag_enable…). */
export const runBody = z
  .looseObject({
    input: z.string().optional(),
    message: z.string().optional().describe('Alias of input'),
    session_id: sessionIdField.optional().describe('Where the reply goes: a phone number, JID or group JID'),
    sessionId: sessionIdField.optional().describe('Alias of session_id'),
    parameters: z.record(z.string(), z.unknown()).optional().describe('Defaults to { "max_steps": 5 }'),
    metadata: z.unknown().optional().describe('Passed to the AI backend unchanged'),
  })
  .superRefine((body, ctx) => {
    if (!(body.input ?? body.message)?.trim()) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: 'input (or message) is required' });
    }
    if (body.session_id === undefined && body.sessionId === undefined) {
      ctx.addIssue({ code: 'custom', path: ['session_id'], message: 'session_id (or sessionId) is required' });
    }
  });
export type RunBody = z.output<typeof runBody>;

export const runResultSchema = z.object({
  reply: z.string().nullable(),
  replySent: z.boolean(),
});
export type RunResult = z.output<typeof runResultSchema>;
