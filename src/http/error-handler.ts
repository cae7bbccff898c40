// One place that turns every error into `{ error: { code, message, traceId } }`; a 5xx never reveals internals.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { databaseUnavailable, isDatabaseUnavailable } from '../db/availability.js';
import { AppError, ERRORS, type ErrorCode, isAppError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_CONTENT_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_PAYLOAD',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_PAYLOAD',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_PAYLOAD',
};

/** Turns a validation failure into our code, naming the field: `body.to: Invalid input: expected string`. */
function fromValidation(error: { validation: { instancePath: string; message?: string }[] }, context: string) {
  const first = error.validation[0];
  const field = [context, ...(first?.instancePath ?? '').split('/').filter(Boolean)].join('.');
  const code: ErrorCode = /(^|\.)agentId$/.test(field) ? 'INVALID_AGENT_ID' : 'INVALID_PAYLOAD';
  return new AppError(code, `${field}: ${first?.message ?? 'invalid value'}`);
}

function toAppError(error: FastifyError): AppError {
  if (isAppError(error)) return error;
  if (hasZodFastifySchemaValidationErrors(error)) return fromValidation(error, error.validationContext ?? 'body');
  const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
  if (mapped === 'INVALID_PAYLOAD' && error.code !== 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new AppError(mapped, 'The body is not valid JSON.');
  }
  if (mapped) return new AppError(mapped, mapped === 'INVALID_PAYLOAD' ? 'The body is empty.' : undefined);
  if (error.statusCode === 400 && /JSON/i.test(error.message))
    return new AppError('INVALID_PAYLOAD', 'The body is not valid JSON.');
  if (error.statusCode === 413) return new AppError('PAYLOAD_TOO_LARGE');
  // Any route that reaches the database answers 503 with Retry-After, not 500, while the database cannot answer.
  if (isDatabaseUnavailable(error)) return databaseUnavailable(error);
  return new AppError('INTERNAL_ERROR', undefined, { cause: error });
}

export function installErrorHandlers(app: FastifyInstance, metrics: Metrics): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const appError = toAppError(error);
    metrics.errors.inc({ code: appError.code, ...metrics.agentLabel(agentIdOf(request.params)) });
    if (appError.status >= 500) {
      const internal = appError.code === 'INTERNAL_ERROR' || isResponseSerializationError(error);
      request.log.error({ err: error, code: appError.code, event: 'http.error' }, 'request failed');
      if (internal) appError.message = ERRORS.INTERNAL_ERROR.message;
    } else {
      request.log.info({ code: appError.code, event: 'http.client_error' }, appError.message);
    }
    return reply
      .status(appError.status)
      .headers(appError.headers)
      .send({
        error: {
          code: appError.code,
          message: appError.message,
          traceId: request.id,
          ...(appError.details ? { details: appError.details } : {}),
        },
      });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `No route for ${request.method} ${request.url.split('?')[0]}`,
        traceId: request.id,
      },
    }),
  );
}

/** Longest path parameter the router takes; a longer one is refused below, any shorter one by the route's schema. */
export const MAX_PARAM_LENGTH = 1_024;

/**
 * Errors of Fastify's router, before any route, hook or error handler: a path whose percent-encoding is not UTF-8
 * (`/sessions/%ED%A0%80`), or a parameter past MAX_PARAM_LENGTH. They get the envelope like every other error.
 */
export function frameworkErrorHandler(metrics: Metrics) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const appError =
      error.code === 'FST_ERR_BAD_URL'
        ? new AppError('INVALID_PAYLOAD', 'path: a percent-encoded part is not UTF-8 text')
        : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new AppError('INVALID_PAYLOAD', `path: a parameter is longer than ${MAX_PARAM_LENGTH} characters`)
          : new AppError('INTERNAL_ERROR', undefined, { cause: error });
    metrics.errors.inc({ code: appError.code });
    if (appError.status >= 500) request.log.error({ err: error, event: 'http.error' }, 'request failed');
    else request.log.info({ code: appError.code, event: 'http.client_error' }, appError.message);
    void reply
      .status(appError.status)
      .header('x-request-id', request.id)
      .send({ error: { code: appError.code, message: appError.message, traceId: request.id } });
  };
}

function agentIdOf(params: unknown): string {
  const value = (params as Record<string, unknown> | undefined)?.agentId;
  return typeof value === 'string' ? value : '';
}
