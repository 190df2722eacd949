import type { IncomingMessage, ServerResponse } from 'node:http';
import { countWords, FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';
import { vector } from './fake-openai.js';

/**
 * A fake Ollama speaking its real wire protocol: `POST /api/chat` (NDJSON stream of
 * `{model, created_at, message, done:false}` lines, then a final `done:true` line with
 * `done_reason`, `prompt_eval_count`, `eval_count` and durations; one JSON object when
 * `stream:false`; `stream` defaults to true as in Ollama), tool calls as
 * `message.tool_calls[].function.{name, arguments(object)}`, `POST /api/embed`,
 * `GET /api/tags`, `GET /api/version`, errors as `{"error":"…"}`. Faults: see common.ts.
 */
export class FakeOllama extends FakeUpstream {
  models = ['llama3.1:8b', 'nomic-embed-text'];

  protected async handle(_req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    if (fault?.mode === 'rate_limit') {
      res.setHeader('retry-after', String(fault.retryAfterS ?? 0));
      return json(res, 429, { error: 'too many requests' });
    }
    if (fault?.mode === 'server_error') return json(res, 500, { error: 'llama runner process has terminated: exit status 2' });
    if (fault?.mode === 'malformed') {
      res.writeHead(200, { 'content-type': seen.body?.stream === false ? 'application/json; charset=utf-8' : 'application/x-ndjson' });
      res.end('{"model": "x", "message": {\n');
      return;
    }
    if (seen.method === 'GET' && seen.path === '/api/version') return json(res, 200, { version: '0.6.4' });
    if (seen.method === 'GET' && seen.path === '/api/tags') {
      return json(res, 200, {
        models: this.models.map((name) => ({ name, model: name, modified_at: '2025-01-01T00:00:00Z', size: 1, digest: 'sha256:fake', details: { family: 'llama', parameter_size: '8B', quantization_level: 'Q4_0' } })),
      });
    }
    if (seen.method === 'POST' && seen.path === '/api/embed') {
      const inputs: string[] = Array.isArray(seen.body?.input) ? seen.body.input : [seen.body?.input ?? ''];
      const tokens = inputs.reduce((n, s) => n + String(s).split(/\s+/).filter(Boolean).length, 0);
      return json(res, 200, { model: seen.body?.model, embeddings: inputs.map((s) => vector(String(s))), total_duration: 1000, load_duration: 10, prompt_eval_count: tokens });
    }
    if (seen.method === 'POST' && seen.path === '/api/chat') return this.chat(res, seen.body, fault);
    return json(res, 404, { error: `404 page not found` });
  }

  private async chat(res: ServerResponse, body: any, fault: Fault | undefined): Promise<void> {
    if (!this.models.includes(body?.model)) return json(res, 404, { error: `model "${body?.model}" not found, try pulling it first` });
    const created_at = new Date().toISOString();
    const prompt = countWords(body.messages);
    const tool = Array.isArray(body.tools) && body.tools.length > 0 ? body.tools[0].function.name : undefined;
    const final = {
      model: body.model,
      created_at,
      message: { role: 'assistant', content: '' },
      done: true,
      done_reason: body.options?.num_predict === 1 ? 'length' : 'stop',
      total_duration: 1_000_000,
      load_duration: 1000,
      prompt_eval_count: prompt,
      prompt_eval_duration: 1000,
      eval_count: tool ? 5 : REPLY_PIECES.length,
      eval_duration: 1000,
    };
    const toolMsg = tool ? { role: 'assistant', content: '', tool_calls: [{ function: { name: tool, arguments: { city: 'Paris' } } }] } : undefined;
    if (body.stream === false) {
      return json(res, 200, { ...final, message: toolMsg ?? { role: 'assistant', content: REPLY_PIECES.join('') } });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const lines = toolMsg ? [toolMsg] : REPLY_PIECES.map((p) => ({ role: 'assistant', content: p }));
    for (let i = 0; i < lines.length; i++) {
      // Let the first chunks reach the client before the fault (as a real mid-stream failure).
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return;
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      if (i === 2 && fault?.mode === 'error_mid_stream') {
        res.end(JSON.stringify({ error: 'an error was encountered while running the model' }) + '\n');
        return;
      }
      if (res.destroyed) return;
      res.write(JSON.stringify({ model: body.model, created_at, message: lines[i], done: false }) + '\n');
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
    }
    res.end(JSON.stringify(final) + '\n');
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
