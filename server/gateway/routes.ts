import { AppError } from '../errors.js';
import type { FastRoute } from '../http/fast-path.js';
import { sendJson } from '../http/respond.js';
import type { Gateway } from './index.js';

/**
 * `/v1`: the OpenAI-compatible surface (API keys), served by the fast path
 * (server/http/fast-path.ts: authentication, JSON body, error envelope). Thin: check the
 * body's shape, call the gateway service with the context, write the result.
 */
export function v1Routes(gateway: Gateway): FastRoute[] {
  const svc = gateway.service;
  return [
    {
      method: 'GET',
      template: '/v1/models',
      pattern: /^\/v1\/models\/?$/i,
      body: false,
      handle: (ctx, _req, res) => sendJson(res, 200, { object: 'list', data: svc.listModels(ctx) }),
    },
    {
      method: 'GET',
      template: '/v1/models/:id',
      pattern: /^\/v1\/models\/([^/]+)\/?$/i,
      body: false,
      handle: (ctx, _req, res, _body, [id]) => sendJson(res, 200, svc.getModel(ctx, id!)),
    },
    {
      method: 'POST',
      template: '/v1/chat/completions',
      pattern: /^\/v1\/chat\/completions\/?$/i,
      body: true,
      handle: async (ctx, req, res, body) => {
        const b = objectBody(body);
        svc.beginCall();
        await svc.chat(ctx, b, req, res);
      },
    },
    {
      method: 'POST',
      template: '/v1/embeddings',
      pattern: /^\/v1\/embeddings\/?$/i,
      body: true,
      handle: async (ctx, req, res, body) => {
        const b = objectBody(body);
        svc.beginCall();
        await svc.embeddings(ctx, b, req, res);
      },
    },
  ];
}

// The body is JSON from the client: the service validates the fields it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function objectBody(b: unknown): Record<string, any> {
  if (!b || typeof b !== 'object' || Array.isArray(b)) {
    throw new AppError(400, 'invalid_request', 'Send a JSON object body with Content-Type: application/json.');
  }
  return b as Record<string, unknown>;
}
