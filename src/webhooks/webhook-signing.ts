// Standard Webhooks signatures (https://www.standardwebhooks.com), made with the spec's reference library.
import { Webhook } from 'standardwebhooks';

/**
 * The three headers of one attempt. Each secret signs (`v1,<base64>`), space-separated: during a rotation's grace
 * period the old and the new secret both sign, so a receiver that knows either verifies.
 */
export function signatureHeaders(
  eventId: string,
  at: Date,
  body: string,
  secrets: readonly string[],
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  return {
    'webhook-id': eventId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((secret) => new Webhook(secret).sign(eventId, at, body)).join(' '),
  };
}
