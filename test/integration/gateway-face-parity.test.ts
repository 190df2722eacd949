import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Face parity: the same scenarios through every face (OpenAI Chat Completions, Responses,
 * Anthropic Messages, Ollama) give equivalent outcomes — the same status class and error code
 * where the face has codes — and exactly one usage record per call, carrying the face.
 */
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv();
  env.addProvider({ name: 'parity', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0, breakerFailures: 100 } });
});
afterAll(async () => {
  await env?.close();
});

type Face = { api: string; path: string; body: (model: string, stream: boolean) => unknown; code: (j: any) => string | undefined };
const hi = 'hello there';
const FACES: Face[] = [
  { api: 'chat', path: '/v1/chat/completions', body: (model, stream) => ({ model, stream, messages: [{ role: 'user', content: hi }] }), code: (j) => j?.error?.code },
  { api: 'responses', path: '/v1/responses', body: (model, stream) => ({ model, stream, input: hi, store: false }), code: (j) => j?.error?.code },
  { api: 'messages', path: '/v1/messages', body: (model, stream) => ({ model, stream, max_tokens: 50, messages: [{ role: 'user', content: hi }] }), code: (j) => j?.error?.type },
  { api: 'ollama', path: '/ollama/api/chat', body: (model, stream) => ({ model, stream, messages: [{ role: 'user', content: hi }] }), code: () => undefined },
];
const SCENARIOS: { name: string; model: string; headers: Record<string, string>; fault: 'server_error' | undefined; status: number; usage: string }[] = [
  { name: 'ok', model: 'gpt-fake', headers: {}, fault: undefined, status: 200, usage: 'ok' },
  { name: 'refused by boundary', model: 'gpt-fake', headers: { 'x-enclave-classification': 'restricted' }, fault: undefined, status: 403, usage: 'refused' },
  { name: 'unknown model', model: 'nope', headers: {}, fault: undefined, status: 404, usage: 'refused' },
  { name: 'upstream 500', model: 'gpt-fake', headers: {}, fault: 'server_error', status: 502, usage: 'error' },
];

describe('the same scenario through every face', () => {
  for (const stream of [false, true]) {
    for (const s of SCENARIOS) {
      it(`${s.name}${stream ? ' (streamed)' : ''}`, async () => {
        const before = env.usage().length;
        const codes: Record<string, string | undefined> = {};
        for (const f of FACES) {
          if (s.fault) env.openai.fail(s.fault);
          const r = await fetch(`${env.app.url}${f.path}`, { method: 'POST', headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json', ...s.headers }, body: JSON.stringify(f.body(s.model, stream)) });
          const text = await r.text();
          expect(r.status, `${f.api}: ${text}`).toBe(s.status);
          if (s.status !== 200) codes[f.api] = f.code(JSON.parse(text));
          else expect(text).toContain('Hello');
        }
        const rows = await waitFor(() => env.usage().slice(before), { what: 'one usage record per face', until: (x) => x.length >= FACES.length });
        expect(rows).toHaveLength(FACES.length);
        expect(rows.map((u) => u.api).sort()).toEqual(FACES.map((f) => f.api).sort());
        for (const u of rows) expect(u.status, u.api).toBe(s.usage);
        if (s.status === 403) expect(codes).toMatchObject({ chat: 'policy_boundary_denied', responses: 'policy_boundary_denied', messages: 'permission_error' });
        if (s.status === 404) expect(codes).toMatchObject({ chat: 'model_not_found', responses: 'model_not_found', messages: 'not_found_error' });
      });
    }
  }
});
