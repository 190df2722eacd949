import type { FastRoute } from '../http/fast-path.js';
import { sendJson } from '../http/respond.js';
import { APP_VERSION } from '../paths.js';
import type { Gateway } from './index.js';
import { objectBody } from './faces/http.js';
import { writeChat, writeEmbeddings } from './faces/openai-chat.js';
import { messagesRoutes } from './faces/messages.js';
import { responsesRoutes } from './faces/responses.js';
import { chatRequest, embedRequest, generateRequest, ollamaError, tagsBody, writeOllama } from './ollama-api.js';

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
      handle: async (ctx, _req, res) => sendJson(res, 200, { object: 'list', data: await svc.listModels(ctx) }),
    },
    {
      method: 'GET',
      template: '/v1/models/:id',
      pattern: /^\/v1\/models\/([^/]+)\/?$/i,
      body: false,
      handle: async (ctx, _req, res, _body, [id]) => sendJson(res, 200, await svc.getModel(ctx, id!)),
    },
    {
      method: 'POST',
      template: '/v1/chat/completions',
      pattern: /^\/v1\/chat\/completions\/?$/i,
      body: true,
      handle: async (ctx, req, res, body) => {
        await writeChat(svc, ctx, req, res, objectBody(body), { api: 'chat' });
      },
    },
    {
      method: 'POST',
      template: '/v1/embeddings',
      pattern: /^\/v1\/embeddings\/?$/i,
      body: true,
      handle: async (ctx, req, res, body) => {
        await writeEmbeddings(svc, ctx, req, res, objectBody(body));
      },
    },
    ...responsesRoutes(svc, gateway.responses, () => gateway.fileSearch),
    ...messagesRoutes(svc),
  ];
}

/**
 * `/ollama/api/*`: the Ollama API over the same pipeline (server/gateway/ollama-api.ts), for
 * clients that speak Ollama: host `http://enclave:8080/ollama`, an API key as bearer token.
 * Errors in Ollama's `{"error": "…"}` shape, authentication's included.
 */
export function ollamaRoutes(gateway: Gateway): FastRoute[] {
  const svc = gateway.service;
  const route = (method: 'GET' | 'POST', name: string, handle: FastRoute['handle']): FastRoute => ({
    method,
    template: `/ollama/api/${name}`,
    pattern: new RegExp(`^/ollama/api/${name}/?$`, 'i'),
    body: method === 'POST',
    errorBody: ollamaError,
    handle,
  });
  return [
    route('GET', 'tags', async (ctx, _req, res) => sendJson(res, 200, tagsBody(await svc.listModels(ctx)))),
    route('GET', 'version', (_ctx, _req, res) => sendJson(res, 200, { version: APP_VERSION })),
    route('POST', 'chat', (ctx, req, res, body) => writeOllama(svc, ctx, req, res, chatRequest(body), 'chat')),
    route('POST', 'generate', (ctx, req, res, body) => writeOllama(svc, ctx, req, res, generateRequest(body), 'generate')),
    route('POST', 'embed', (ctx, req, res, body) => writeOllama(svc, ctx, req, res, embedRequest(body), 'embed')),
  ];
}
