import { randomBytes } from 'node:crypto';
import { dataUrl } from '../bedrock/transform.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../types.js';
import { UpstreamError } from '../types.js';

/**
 * OpenAI Chat Completions ⇄ Gemini `generateContent` / `streamGenerateContent` (the same
 * shape on Vertex AI and on the Generative Language API; pure functions,
 * test/unit/gemini-transform.test.ts).
 *
 * Request: system/developer messages → `systemInstruction`; user text and data-URL images →
 * `text` / `inlineData` parts; assistant tool_calls → `functionCall` parts of a `model` turn;
 * tool messages → `functionResponse` parts of a user turn (the function's name is found from
 * the assistant turn that called it — Gemini pairs them by name); tools →
 * `functionDeclarations`; tool_choice → `functionCallingConfig`; sampling → `generationConfig`.
 * Response: the first candidate's parts → content and tool_calls (thought parts left out);
 * `finishReason` → finish_reason; `usageMetadata` → usage; a prompt or an answer blocked
 * by safety settings → `provider_content_filtered`.
 */
type Part =
  | { text: string }
  | { inlineData: { mimeType: string; data: string } }
  | { functionCall: { name: string; args: unknown } }
  | { functionResponse: { name: string; response: unknown } };
interface Content {
  role: 'user' | 'model';
  parts: Part[];
}
export interface GeminiRequest {
  contents: Content[];
  systemInstruction?: { parts: { text: string }[] };
  tools?: { functionDeclarations: { name: string; description?: string; parameters?: unknown }[] }[];
  toolConfig?: { functionCallingConfig: { mode: 'AUTO' | 'ANY' | 'NONE'; allowedFunctionNames?: string[] } };
  generationConfig?: Record<string, unknown>;
}
export interface UsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  totalTokenCount?: number;
  cachedContentTokenCount?: number;
  thoughtsTokenCount?: number;
}
export interface GeminiResponse {
  candidates?: { content?: { role?: string; parts?: Record<string, any>[] }; finishReason?: string; index?: number }[];
  promptFeedback?: { blockReason?: string; blockReasonMessage?: string };
  usageMetadata?: UsageMetadata;
  error?: { code?: number; message?: string; status?: string };
}

function rejected(msg: string): UpstreamError {
  return new UpstreamError('provider_request_rejected', msg, 400, undefined, msg);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: any) => (p?.type === 'text' && typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

function userParts(content: unknown): Part[] {
  if (typeof content === 'string') return content ? [{ text: content }] : [];
  const out: Part[] = [];
  for (const p of (content as any[]) ?? []) {
    if (p?.type === 'text' && typeof p.text === 'string') {
      if (p.text) out.push({ text: p.text });
    } else if (p?.type === 'image_url') {
      const [mimeType, data] = dataUrl(String(typeof p.image_url === 'string' ? p.image_url : p.image_url?.url ?? ''));
      out.push({ inlineData: { mimeType, data } });
    } else throw rejected(`Content part type ${String(p?.type)} is not supported by this provider.`);
  }
  return out;
}

function parseArgs(a: unknown): unknown {
  if (typeof a !== 'string') return a ?? {};
  if (a.trim() === '') return {};
  try {
    return JSON.parse(a);
  } catch {
    throw rejected('A tool call’s arguments are not valid JSON.');
  }
}

/** Gemini's schema dialect (an OpenAPI subset) refuses these JSON Schema keywords. */
const UNSUPPORTED_SCHEMA_KEYS = new Set(['$schema', 'additionalProperties', '$id', '$defs', 'definitions', 'strict']);
function cleanSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(cleanSchema);
  if (!s || typeof s !== 'object') return s;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (!UNSUPPORTED_SCHEMA_KEYS.has(k)) out[k] = cleanSchema(v);
  return out;
}

export function toGemini(req: ChatRequest): GeminiRequest {
  const r = req as Record<string, any>;
  const system: { text: string }[] = [];
  const contents: Content[] = [];
  const names = new Map<string, string>(); // tool_call_id → function name
  const push = (role: Content['role'], parts: Part[]): void => {
    if (!parts.length) return;
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of (r.messages as any[]) ?? []) {
    switch (m?.role) {
      case 'system':
      case 'developer': {
        const t = textOf(m.content);
        if (t) system.push({ text: t });
        break;
      }
      case 'user':
        push('user', userParts(m.content));
        break;
      case 'assistant': {
        const parts: Part[] = [];
        const t = textOf(m.content);
        if (t) parts.push({ text: t });
        for (const tc of m.tool_calls ?? []) {
          const name = String(tc.function?.name);
          names.set(String(tc.id), name);
          parts.push({ functionCall: { name, args: parseArgs(tc.function?.arguments) } });
        }
        push('model', parts);
        break;
      }
      case 'tool': {
        const name = names.get(String(m.tool_call_id)) ?? (typeof m.name === 'string' ? m.name : undefined);
        if (!name) throw rejected(`A tool message answers tool_call_id ${String(m.tool_call_id)}, which no earlier assistant message called.`);
        const text = textOf(m.content);
        let response: unknown;
        try {
          const v = JSON.parse(text);
          response = v && typeof v === 'object' && !Array.isArray(v) ? v : { content: v };
        } catch {
          response = { content: text };
        }
        push('user', [{ functionResponse: { name, response } }]);
        break;
      }
      default:
        throw rejected(`Message role ${String(m?.role)} is not supported by this provider.`);
    }
  }
  const out: GeminiRequest = { contents };
  if (system.length) out.systemInstruction = { parts: system };
  const g: Record<string, unknown> = {};
  const max = r.max_completion_tokens ?? r.max_tokens;
  if (typeof max === 'number') g.maxOutputTokens = max;
  if (typeof r.temperature === 'number') g.temperature = r.temperature;
  if (typeof r.top_p === 'number') g.topP = r.top_p;
  if (typeof r.seed === 'number') g.seed = r.seed;
  if (typeof r.n === 'number' && r.n > 1) g.candidateCount = r.n;
  if (typeof r.presence_penalty === 'number') g.presencePenalty = r.presence_penalty;
  if (typeof r.frequency_penalty === 'number') g.frequencyPenalty = r.frequency_penalty;
  if (typeof r.stop === 'string') g.stopSequences = [r.stop];
  else if (Array.isArray(r.stop) && r.stop.length) g.stopSequences = r.stop.map(String);
  const rf = r.response_format;
  if (rf?.type === 'json_object') g.responseMimeType = 'application/json';
  else if (rf?.type === 'json_schema' && rf.json_schema?.schema) {
    g.responseMimeType = 'application/json';
    g.responseSchema = cleanSchema(rf.json_schema.schema);
  }
  if (Object.keys(g).length) out.generationConfig = g;
  const tools = Array.isArray(r.tools) ? r.tools.filter((t: any) => t?.type === 'function' && t.function?.name) : [];
  if (tools.length) {
    out.tools = [
      {
        functionDeclarations: tools.map((t: any) => ({
          name: t.function.name,
          ...(t.function.description ? { description: t.function.description } : {}),
          ...(t.function.parameters ? { parameters: cleanSchema(t.function.parameters) } : {}),
        })),
      },
    ];
    const tc = r.tool_choice;
    if (tc === 'none') out.toolConfig = { functionCallingConfig: { mode: 'NONE' } };
    else if (tc === 'required') out.toolConfig = { functionCallingConfig: { mode: 'ANY' } };
    else if (tc && typeof tc === 'object' && tc.function?.name) out.toolConfig = { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [tc.function.name] } };
  }
  return out;
}

/** Finish reasons that mean the safety system stopped the answer. */
const FILTERED = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY']);
type Finish = 'stop' | 'length' | 'tool_calls' | 'content_filter';
export function finishReason(reason: string | undefined, sawTools: boolean): Finish {
  if (reason && FILTERED.has(reason)) return 'content_filter';
  if (reason === 'MAX_TOKENS') return 'length';
  return sawTools ? 'tool_calls' : 'stop';
}

/** The safety filter's refusal; `upstreamText` says which side it flagged (the gateway's message reads it). */
function filteredError(side: 'prompt' | 'completion', why: string): UpstreamError {
  return new UpstreamError('provider_content_filtered', `The provider's safety filter blocked the ${side === 'prompt' ? 'prompt' : 'answer'} (${why}).`, 400, undefined, side);
}

/** A blocked prompt (promptFeedback.blockReason) as its error, or undefined. */
export function blockedPrompt(r: GeminiResponse): UpstreamError | undefined {
  const b = r.promptFeedback?.blockReason;
  return b ? filteredError('prompt', `${b}${r.promptFeedback?.blockReasonMessage ? `, ${r.promptFeedback.blockReasonMessage.slice(0, 200)}` : ''}`) : undefined;
}

export function usageOf(u: UsageMetadata | undefined): NonNullable<ChatCompletion['usage']> {
  const p = u?.promptTokenCount ?? 0;
  const thoughts = u?.thoughtsTokenCount ?? 0;
  const c = (u?.candidatesTokenCount ?? 0) + thoughts;
  const cached = u?.cachedContentTokenCount;
  return {
    prompt_tokens: p,
    completion_tokens: c,
    total_tokens: u?.totalTokenCount ?? p + c,
    ...(cached ? { prompt_tokens_details: { cached_tokens: cached } } : {}),
    ...(thoughts ? { completion_tokens_details: { reasoning_tokens: thoughts } } : {}),
  };
}

const newId = (): string => `chatcmpl-${randomBytes(12).toString('hex')}`;
const callId = (): string => `call_${randomBytes(12).toString('hex')}`;

type ToolCall = { id: string; type: 'function'; function: { name: string; arguments: string } };

/** Text and function calls of a candidate's parts (thought parts left out). */
function partsOf(parts: Record<string, any>[] | undefined): { text: string; tools: ToolCall[] } {
  let text = '';
  const tools: ToolCall[] = [];
  for (const p of parts ?? []) {
    if (p.thought === true) continue;
    if (typeof p.text === 'string') text += p.text;
    else if (p.functionCall) tools.push({ id: callId(), type: 'function', function: { name: String(p.functionCall.name), arguments: JSON.stringify(p.functionCall.args ?? {}) } });
  }
  return { text, tools };
}

export function fromGemini(r: GeminiResponse, model: string): ChatCompletion {
  const blocked = blockedPrompt(r);
  if (blocked) throw blocked;
  if (!Array.isArray(r?.candidates) || r.candidates.length === 0) throw new UpstreamError('provider_bad_response', 'The provider answered without candidates.');
  const choices = r.candidates.map((c, i) => {
    const { text, tools } = partsOf(c.content?.parts);
    const finish = finishReason(c.finishReason, tools.length > 0);
    return {
      index: c.index ?? i,
      message: { role: 'assistant' as const, content: tools.length && !text ? null : text, refusal: null, ...(tools.length ? { tool_calls: tools } : {}) },
      finish_reason: finish,
      logprobs: null,
    };
  });
  // One candidate stopped by the safety filter with nothing to show: a clear error, not an empty answer.
  if (choices.length === 1 && choices[0]!.finish_reason === 'content_filter' && !choices[0]!.message.content && !choices[0]!.message.tool_calls) {
    throw filteredError('completion', String(r.candidates[0]!.finishReason));
  }
  return { id: newId(), object: 'chat.completion', created: Math.floor(Date.now() / 1000), model, choices, usage: usageOf(r.usageMetadata) };
}

/**
 * streamGenerateContent answers (each a partial GenerateContentResponse) → OpenAI chunks.
 * Gemini sends whole function calls (not argument pieces), so each becomes one tool_calls
 * delta. usageMetadata is cumulative: the last one is the usage chunk. A stream without a
 * finishReason was cut off.
 */
export async function* toOpenAIChunks(responses: AsyncIterable<GeminiResponse>, model: string): AsyncGenerator<ChatCompletionChunk> {
  const base = { id: newId(), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model };
  const chunk = (index: number, delta: Record<string, unknown>, finish: Finish | null = null): ChatCompletionChunk => ({
    ...base,
    choices: [{ index, delta: delta as ChatCompletionChunk['choices'][number]['delta'], finish_reason: finish, logprobs: null }],
  });
  const started = new Set<number>();
  const toolCount = new Map<number, number>();
  const hasContent = new Set<number>();
  const finished = new Set<number>();
  let usage: UsageMetadata | undefined;
  for await (const r of responses) {
    if (r.error) throw new UpstreamError('provider_stream_error', `The provider reported an error mid-stream: ${String(r.error.message ?? r.error.status ?? 'unknown').slice(0, 300)}`);
    const blocked = blockedPrompt(r);
    if (blocked) throw blocked;
    if (r.usageMetadata) usage = r.usageMetadata;
    for (const [i, c] of (r.candidates ?? []).entries()) {
      const index = c.index ?? i;
      if (!started.has(index)) {
        started.add(index);
        yield chunk(index, { role: 'assistant', content: '' });
      }
      const { text, tools } = partsOf(c.content?.parts);
      if (text) {
        hasContent.add(index);
        yield chunk(index, { content: text });
      }
      if (tools.length) {
        hasContent.add(index);
        const n = toolCount.get(index) ?? 0;
        toolCount.set(index, n + tools.length);
        yield chunk(index, { tool_calls: tools.map((t, k) => ({ index: n + k, ...t })) });
      }
      if (c.finishReason && !finished.has(index)) {
        const f = finishReason(c.finishReason, (toolCount.get(index) ?? 0) > 0);
        // Stopped by the safety filter before a word: the same clear error as a plain call.
        if (f === 'content_filter' && !hasContent.has(index) && started.size === 1) throw filteredError('completion', c.finishReason);
        finished.add(index);
        yield chunk(index, {}, f);
      }
    }
  }
  if (finished.size === 0 || finished.size < started.size) throw new UpstreamError('provider_stream_error', 'The provider stream ended before the answer was finished.');
  if (usage) yield { ...base, choices: [], usage: usageOf(usage) };
}

/**
 * A Google API error body (`{"error":{"code","message","status","details"}}`) as an
 * UpstreamError: RESOURCE_EXHAUSTED with its RetryInfo delay, an invalid API key (a 400
 * with reason API_KEY_INVALID) as an auth failure, the rest by status.
 */
export function googleError(status: number, text: string, retryAfterHeader?: number): UpstreamError {
  let message = '';
  let gStatus = '';
  let retryMs = retryAfterHeader;
  let keyInvalid = false;
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown; status?: unknown; details?: Record<string, any>[] } };
    message = typeof j.error?.message === 'string' ? j.error.message.slice(0, 300) : '';
    gStatus = typeof j.error?.status === 'string' ? j.error.status : '';
    for (const d of Array.isArray(j.error?.details) ? j.error.details : []) {
      if (String(d['@type']).endsWith('google.rpc.RetryInfo') && typeof d.retryDelay === 'string') {
        const s = Number.parseFloat(d.retryDelay);
        if (Number.isFinite(s)) retryMs = Math.max(0, s * 1000);
      }
      if (d.reason === 'API_KEY_INVALID') keyInvalid = true;
    }
  } catch {
    message = text.slice(0, 300);
  }
  const msg = `The provider answered ${status}${gStatus ? ` ${gStatus}` : ''}: ${message || `HTTP ${status}`}`;
  if (keyInvalid || status === 401 || status === 403 || gStatus === 'UNAUTHENTICATED' || gStatus === 'PERMISSION_DENIED') return new UpstreamError('provider_auth_failed', msg, status);
  if (status === 429 || gStatus === 'RESOURCE_EXHAUSTED') return new UpstreamError('provider_rate_limited', msg, status, retryMs);
  if (status === 404) return new UpstreamError('provider_model_not_found', msg, status);
  if (status >= 500) return new UpstreamError('provider_server_error', msg, status, retryMs);
  return new UpstreamError('provider_request_rejected', msg, status, undefined, message || undefined);
}
