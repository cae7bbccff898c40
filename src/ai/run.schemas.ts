// Request and response schemas of POST /agents/{agentId}/run.
import { z } from 'zod';
import { freeJson } from '../http/free-json.js';
import { isText, text } from '../http/schemas.js';

const sessionIdField = z.union([text().trim().min(1).max(128), z.number().int().nonnegative()]);

/** Every field beyond these is passed to the AI backend unchanged (openai_api_key, rag_enable…), once checked as text. */
export const runBody = z
  .object({
    input: text().optional(),
    message: text().optional().describe('Alias of input'),
    session_id: sessionIdField.optional().describe('Where the reply goes: a phone number, JID or group JID'),
    sessionId: sessionIdField.optional().describe('Alias of session_id'),
    parameters: z.record(text(), freeJson()).optional().describe('Defaults to { "max_steps": 5 }'),
    metadata: freeJson().optional().describe('Passed to the AI backend unchanged'),
  })
  .catchall(freeJson())
  .superRefine((body, ctx) => {
    // The pass-through fields' own names: their values are checked by catchall, their names here.
    if (!Object.keys(body).every(isText))
      ctx.addIssue({ code: 'custom', path: [], message: 'a field name is not valid text' });
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
