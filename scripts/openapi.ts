// `npm run openapi`: writes openapi.json and openapi.yaml at the repository root from the route schemas.
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { openDatabase } from '../src/db/client.js';
import { buildOpenApiDocument } from './openapi-document.js';

const database = await openDatabase({ memory: true });
try {
  const document = await buildOpenApiDocument(database);
  await writeFile('openapi.json', `${JSON.stringify(document, null, 2)}\n`);
  // YAML 1.1 quoting: strings such as off, on, yes and no stay strings for 1.1 readers (PyYAML, many tools).
  await writeFile('openapi.yaml', stringify(document, { version: '1.1' }));
  process.stdout.write('wrote openapi.json and openapi.yaml\n');
} finally {
  await database.close();
}
