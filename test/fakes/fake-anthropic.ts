import type { IncomingMessage, ServerResponse } from 'node:http';
import { countWords, FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';

/**
 * A fake Anthropic Messages API speaking the real wire protocol (2023-06-01):
 * `POST /v1/messages` answers a Message, or with `stream: true` the SSE event sequence
 * message_start, content_block_start, ping, content_block_delta…, content_block_stop,
 * message_delta (stop_reason, output usage), message_stop — each as `event: <type>` plus
 * `data: {"type": <type>, …}`; tool_use blocks (input streamed as input_json_delta) when the
 * request offers tools; `GET /v1/models`; errors as `{"type":"error","error":{type,message}}`
 * (401 authentication_error, 404 not_found_error, 400 invalid_request_error, 429
 * rate_limit_error with retry-after, 500 api_error, 529 overloaded_error, and the `error`
 * event mid-stream). Checks what the real API checks and the gateway could get wrong:
 * x-api-key, anthropic-version, max_tokens, alternating roles starting with user, tool_result
 * ids matching an earlier tool_use, base64 image blocks with a media type.
 */
export class FakeAnthropic extends FakeUpstream {
  models = ['claude-fake-1', 'claude-fake-2'];
  /** Required x-api-key; undefined = any. */
  apiKey: string | undefined;
  /** Cache usage the next answers report (prompt caching). */
  cache = { read: 0, write: 0 };

  override reset(): void {
    super.reset();
    this.cache = { read: 0, write: 0 };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    if (this.apiKey !== undefined && req.headers['x-api-key'] !== this.apiKey) return error(res, 401, 'authentication_error', 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return error(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (fault?.mode === 'rate_limit') {
      res.setHeader('retry-after', String(fault.retryAfterS ?? 0));
      return error(res, 429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit');
    }
    if (fault?.mode === 'server_error') return error(res, 500, 'api_error', 'Internal server error');
    if (fault?.mode === 'overloaded') return error(res, 529, 'overloaded_error', 'Overloaded');
    if (fault?.mode === 'malformed') {
      res.writeHead(200, { 'content-type': seen.body?.stream ? 'text/event-stream' : 'application/json' });
      res.end(seen.body?.stream ? 'event: message_start\ndata: {"type": "message_start", "message": {\n\n' : '{"id": "msg_x", "content": [');
      return;
    }
    if (seen.method === 'GET' && seen.path === '/v1/models') {
      const data = this.models.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' }));
      return json(res, 200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
    }
    if (seen.method === 'POST' && seen.path === '/v1/messages') return this.messages(res, seen.body, fault);
    return error(res, 404, 'not_found_error', `Not found: ${seen.path}`);
  }

  private invalid(body: any): string | undefined {
    if (typeof body?.model !== 'string') return 'model: Field required';
    if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: Field required';
    if (!Array.isArray(body.messages) || !body.messages.length) return 'messages: at least one message is required';
    if (body.system !== undefined && typeof body.system !== 'string' && !Array.isArray(body.system)) return 'system: Input should be a valid string';
    const toolUses = new Set<string>();
    for (const [i, m] of (body.messages as any[]).entries()) {
      if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
      if (i === 0 && m.role !== 'user') return 'messages: first message must use the "user" role';
      if (i > 0 && body.messages[i - 1].role === m.role) return 'messages: roles must alternate between "user" and "assistant"';
      for (const [j, b] of (Array.isArray(m.content) ? m.content : []).entries()) {
        const at = `messages.${i}.content.${j}`;
        if (b.type === 'tool_use') toolUses.add(b.id);
        if (b.type === 'tool_use' && (typeof b.input !== 'object' || b.input === null || Array.isArray(b.input))) return `${at}.input: Input should be an object`;
        if (b.type === 'tool_result' && !toolUses.has(b.tool_use_id)) return `${at}: unexpected tool_use_id found in tool_result blocks: ${b.tool_use_id}`;
        if (b.type === 'image' && b.source?.type === 'base64' && !/^image\/(png|jpeg|gif|webp)$/.test(b.source.media_type)) return `${at}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`;
        if (b.type === 'image' && b.source?.type !== 'base64' && b.source?.type !== 'url') return `${at}.source: Input tag does not match any of the expected tags`;
      }
    }
    for (const [i, t] of (body.tools ?? []).entries()) {
      if (typeof t.name !== 'string' || typeof t.input_schema !== 'object') return `tools.${i}: name and input_schema are required`;
    }
    if (body.temperature !== undefined && (body.temperature < 0 || body.temperature > 1)) return 'temperature: Input should be less than or equal to 1';
    return undefined;
  }

  private async messages(res: ServerResponse, body: any, fault: Fault | undefined): Promise<void> {
    const why = this.invalid(body);
    if (why) return error(res, 400, 'invalid_request_error', why);
    if (!this.models.includes(body.model)) return error(res, 404, 'not_found_error', `model: ${body.model}`);
    const id = `msg_fake${Math.random().toString(36).slice(2, 10)}`;
    const input = countWords(body.messages) + (typeof body.system === 'string' ? body.system.split(/\s+/).filter(Boolean).length : 0);
    const tool = Array.isArray(body.tools) && body.tools.length > 0 && body.tool_choice?.type !== 'none' ? body.tools[0].name : undefined;
    const pieces = REPLY_PIECES.slice(0, body.max_tokens);
    const stop = tool ? 'tool_use' : pieces.length < REPLY_PIECES.length ? 'max_tokens' : 'end_turn';
    const output = tool ? 5 : pieces.length;
    const usage = { input_tokens: input, cache_creation_input_tokens: this.cache.write, cache_read_input_tokens: this.cache.read, output_tokens: output };
    const toolUse = tool ? { type: 'tool_use', id: 'toolu_fake1', name: tool, input: { city: 'Paris' } } : undefined;
    if (!body.stream) {
      return json(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: toolUse ? [toolUse] : [{ type: 'text', text: pieces.join('') }],
        stop_reason: stop,
        stop_sequence: null,
        usage,
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (type: string, o: object): boolean => !res.destroyed && res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`);
    send('message_start', {
      message: { id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
    });
    send('content_block_start', { index: 0, content_block: toolUse ? { ...toolUse, input: {} } : { type: 'text', text: '' } });
    send('ping', {});
    const deltas = toolUse
      ? [{ type: 'input_json_delta', partial_json: '' }, { type: 'input_json_delta', partial_json: '{"city":' }, { type: 'input_json_delta', partial_json: ' "Paris"}' }]
      : pieces.map((text) => ({ type: 'text_delta', text }));
    for (let i = 0; i < deltas.length; i++) {
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return;
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      if (i === 2 && fault?.mode === 'error_mid_stream') {
        send('error', { error: { type: 'overloaded_error', message: 'Overloaded' } });
        res.end();
        return;
      }
      send('content_block_delta', { index: 0, delta: deltas[i] });
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
      if (res.destroyed) return;
    }
    send('content_block_stop', { index: 0 });
    send('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: output } });
    send('message_stop', {});
    res.end();
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'request-id': `req_fake${status}` });
  res.end(text);
}

function error(res: ServerResponse, status: number, type: string, message: string): void {
  json(res, status, { type: 'error', error: { type, message } });
}
