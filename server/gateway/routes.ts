import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import type { Identity } from '../identity/index.js';
import { authenticate } from '../identity/http.js';
import type { Gateway } from './index.js';

/**
 * `/v1`: the OpenAI-compatible surface (API keys). Thin: parse, call the gateway service
 * with the context, map the result. Errors use the OpenAI envelope (server/http/errors.ts).
 */
export function gatewayRouter(identity: Identity, gateway: Gateway): Router {
  const r = Router();
  const auth = authenticate(identity, { accept: ['api_key'] });
  const svc = gateway.service;

  r.get('/v1/models', auth, (req: Request, res: Response) => {
    res.json({ object: 'list', data: svc.listModels(req.ctx) });
  });
  r.get('/v1/models/:id', auth, (req: Request, res: Response) => {
    res.json(svc.getModel(req.ctx, String(req.params.id)));
  });
  r.post('/v1/chat/completions', auth, async (req: Request, res: Response) => {
    svc.beginCall();
    await svc.chat(req.ctx, bodyOf(req), req, res);
  });
  r.post('/v1/embeddings', auth, async (req: Request, res: Response) => {
    svc.beginCall();
    await svc.embeddings(req.ctx, bodyOf(req), req, res);
  });
  return r;
}

function bodyOf(req: Request): Record<string, any> {
  const b = req.body as unknown;
  if (!b || typeof b !== 'object' || Array.isArray(b)) {
    throw new AppError(400, 'invalid_request', 'Send a JSON object body with Content-Type: application/json.');
  }
  return b as Record<string, any>;
}

