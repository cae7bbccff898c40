import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildOpenApiDocument } from '../scripts/openapi-document.js';
import { useTestApp } from './helpers/app.js';

interface Operation {
  requestBody?: unknown;
  responses: Record<string, unknown>;
}

describe('OpenAPI document', () => {
  const f = useTestApp();

  it('is committed up to date (run `npm run openapi` after changing a route)', async () => {
    const generated = JSON.parse(JSON.stringify(await buildOpenApiDocument(f.db.database)));
    const committedJson = JSON.parse(await readFile('openapi.json', 'utf8'));
    const committedYaml = parse(await readFile('openapi.yaml', 'utf8'));
    expect(committedJson).toEqual(generated);
    expect(committedYaml).toEqual(generated);
  });

  it('describes the contract routes', async () => {
    const document = JSON.parse(await readFile('openapi.json', 'utf8'));
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/sessions', '/sessions/{agentId}', '/sessions/{agentId}/qr', '/health', '/metrics']),
    );
  });

  it('documents the media upload as multipart/form-data beside JSON, and the request bodies with examples', async () => {
    const document = JSON.parse(await readFile('openapi.json', 'utf8'));
    const media = document.paths['/agents/{agentId}/media'].post.requestBody.content;
    expect(Object.keys(media)).toEqual(['application/json', 'multipart/form-data']);
    const form = media['multipart/form-data'].schema;
    expect(form.properties.file).toMatchObject({ type: 'string', format: 'binary' });
    expect(form.properties.data).toBeUndefined();
    expect(form.required).toEqual(['to', 'file']);
    expect(media['application/json'].schema.properties.data).toBeDefined();
    // Any body may be too large or of a type the route does not read.
    for (const [route, operations] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
      for (const [method, operation] of Object.entries(operations)) {
        if (!operation.requestBody) continue;
        expect(Object.keys(operation.responses), `${method} ${route}`).toEqual(expect.arrayContaining(['413', '415']));
      }
    }
    for (const route of ['/sessions', '/agents/{agentId}/messages', '/sandbox/agents/{agentId}/inbound']) {
      expect(document.paths[route].post.requestBody.content['application/json'].schema.example, route).toBeDefined();
    }
  });

  it('is served at /docs/json, with the UI at /docs and its assets from this service', async () => {
    const json = await f.t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(json.statusCode).toBe(200);
    expect(json.json().info.title).toBe('WhatsApp Multi-Tenant API');
    const ui = await f.t.app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toContain('text/html');
    const scripts = [...ui.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(scripts.length).toBeGreaterThan(0);
    for (const src of scripts) expect(src).not.toMatch(/^(https?:)?\/\//);
  });
});
