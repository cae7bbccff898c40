// Calls the service's JSON API with the admin key and turns error envelopes into ApiError.

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | undefined} traceId
   */
  constructor(status, code, message, traceId) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.traceId = traceId;
  }

  /** One line for the page: what went wrong, the code and HTTP status, and the trace id to find it in logs. */
  describe() {
    const trace = this.traceId ? `, trace ${this.traceId}` : '';
    return `${this.message} (${this.code}, HTTP ${this.status}${trace})`;
  }
}

/**
 * @param {() => string | null} getKey
 */
export function createApi(getKey) {
  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async function request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    const key = getKey();
    if (key) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'NETWORK_ERROR', 'The service could not be reached', undefined);
    }
    const text = await response.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const error = json?.error;
      throw new ApiError(
        response.status,
        error?.code ?? `HTTP_${response.status}`,
        error?.message ?? (response.statusText || 'The request failed'),
        error?.traceId ?? response.headers.get('x-request-id') ?? undefined,
      );
    }
    return { status: response.status, data: json?.data };
  }

  return {
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body ?? {}),
    delete: (path) => request('DELETE', path),
  };
}
