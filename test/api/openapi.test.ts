// The control API publishes its OpenAPI document; a real validator accepts it and it lists every route.
import test from 'ava';
import SwaggerParser from '@apidevtools/swagger-parser';
import { removeDir, startDaemon } from '../helpers/daemon.js';

const ROUTES: Record<string, string[]> = {
  '/v1/info': ['get'],
  '/v1/networks': ['get', 'post'],
  '/v1/networks/{name}': ['get', 'delete'],
  '/v1/networks/{name}/peers': ['get'],
  '/v1/services': ['get', 'post'],
  '/v1/services/{name}': ['get', 'patch', 'delete'],
  '/v1/tasks': ['get', 'post'],
  '/v1/tasks/{ref}': ['get', 'patch', 'delete'],
  '/v1/containers': ['get', 'post'],
  '/v1/containers/{name}': ['get', 'delete'],
  '/v1/explain': ['get'],
  '/v1/dataplane': ['get'],
  '/v1/dataplane/show': ['get'],
  '/v1/nodes': ['get'],
  '/v1/openapi.json': ['get'],
};

test('/v1/openapi.json is valid OpenAPI 3 and lists every route with its request schema', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const doc = (await (await fetch(`${d.api}/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; parameters?: Array<{ name: string; in: string }> }>> };
  t.regex(doc.openapi, /^3\./);
  await t.notThrowsAsync(SwaggerParser.validate(structuredClone(doc) as never), 'a real validator accepts it');
  const listed = Object.fromEntries(Object.entries(doc.paths).map(([p, ops]) => [p, Object.keys(ops).sort()]));
  t.deepEqual(listed, Object.fromEntries(Object.entries(ROUTES).map(([p, m]) => [p, [...m].sort()])));
  t.truthy(doc.paths['/v1/services']!.post!.requestBody, 'a write documents its body');
  t.deepEqual(doc.paths['/v1/explain']!.get!.parameters!.map((p) => `${p.in}:${p.name}`).sort(), ['query:from', 'query:name', 'query:port', 'query:type']);
  // The schema is what the server checks: a wrong type is a 400 naming the field, nothing written.
  const r = await fetch(`${d.api}/v1/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', networks: ['n'], ports: [{ target: '80' }] }) });
  t.is(r.status, 400);
  t.deepEqual(await r.json(), { error: { code: 'BAD_REQUEST', message: 'invalid request: body/ports/0/target must be integer' } });
  const extra = await fetch(`${d.api}/v1/networks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'n', subnet: '10.1.0.0/24', subnett: 'typo' }) });
  t.is(extra.status, 400);
  t.regex(((await extra.json()) as { error: { message: string } }).error.message, /invalid request: body has an unknown field "subnett"/);
});
