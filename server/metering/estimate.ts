/**
 * What admission reserves for one call (issue 16, "quota overshoot under parallel calls").
 *
 * Every in-flight call holds its reservation at every level, so a budget can only be passed by
 * what calls use *beyond* what they reserved. The reservation is therefore pessimistic about
 * everything the request itself states:
 *
 *   prompt  = all message text (system, user, assistant, tool results, tool-call arguments)
 *             + tool/function definitions + a response_format schema, at ≈ 4 characters per
 *             token, + IMAGE_TOKENS per image part;
 *   output  = max_completion_tokens ?? max_tokens, or — when the client sends neither — the
 *             largest `maxOutputTokens` among the deployments that may serve the call
 *             (DEFAULT_MAX_OUTPUT_TOKENS when unset), times `n` (every choice is billed).
 *
 * What stays possible is written down in docs/quotas.md ("What a budget can be passed by").
 */

/** Completion tokens reserved per choice when neither the client nor the deployment says. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 1024;
/** Tokens reserved per image part (OpenAI's charge for a 1024×1024 image at high detail). */
export const IMAGE_TOKENS = 765;
/** OpenAI accepts n up to 128; anything else is sent on and refused upstream, reserve as 1. */
const MAX_N = 128;

export interface CallEstimate {
  /** Prompt tokens, estimated. */
  readonly promptTokens: number;
  /** Completion tokens to reserve: the per-choice maximum × n (0 for embeddings). */
  readonly maxTokens: number;
}

/** The part of a routing candidate the estimate reads. */
export interface EstimateCandidate {
  readonly deployment: { readonly options: { readonly maxOutputTokens?: number } };
}

/** Characters of text → tokens, at about four characters per token (rounded up). */
function tokensOf(chars: number): number {
  return Math.ceil(chars / 4);
}

/** Characters of a value's JSON (tool definitions, schemas); 0 for nothing. */
function jsonChars(v: unknown): number {
  if (v === undefined || v === null) return 0;
  try {
    return JSON.stringify(v)?.length ?? 0;
  } catch {
    return 0; // a cycle cannot come from parsed JSON; nothing to count
  }
}

function positiveInt(v: unknown): number | undefined {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : undefined;
}

/** The reservation of a chat call. `messages` are the call's messages (after the content rules). */
export function estimateChat(body: Record<string, unknown>, messages: readonly unknown[], candidates: readonly EstimateCandidate[]): CallEstimate {
  let chars = 0;
  let images = 0;
  for (const raw of messages) {
    const m = raw as Record<string, any> | null;
    if (!m || typeof m !== 'object') continue;
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) {
      for (const p of m.content) {
        if (typeof p?.text === 'string') chars += p.text.length;
        else if (p?.type === 'image_url' || p?.type === 'input_image' || p?.type === 'image') images++;
      }
    }
    if (typeof m.name === 'string') chars += m.name.length;
    if (Array.isArray(m.tool_calls)) for (const tc of m.tool_calls) chars += String(tc?.function?.name ?? '').length + String(tc?.function?.arguments ?? '').length;
    if (m.function_call) chars += jsonChars(m.function_call);
    // Ollama-shaped images (base64 strings) translated at the door keep an `images` list.
    if (Array.isArray(m.images)) images += m.images.length;
  }
  chars += jsonChars(body.tools) + jsonChars(body.functions);
  const rf = body.response_format as Record<string, unknown> | undefined;
  if (rf && typeof rf === 'object' && rf.type === 'json_schema') chars += jsonChars(rf.json_schema);
  const promptTokens = tokensOf(chars) + images * IMAGE_TOKENS;

  const nRaw = positiveInt(body.n);
  const n = nRaw !== undefined && nRaw <= MAX_N ? nRaw : 1;
  let perChoice = positiveInt(body.max_completion_tokens ?? body.max_tokens);
  if (perChoice === undefined) {
    perChoice = 0;
    for (const c of candidates) perChoice = Math.max(perChoice, c.deployment.options.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS);
    if (!perChoice) perChoice = DEFAULT_MAX_OUTPUT_TOKENS;
  }
  return { promptTokens, maxTokens: perChoice * n };
}

/** The reservation of an embeddings call: its input (strings at ≈ 4 characters per token, token arrays by length). */
export function estimateEmbeddings(input: unknown): CallEstimate {
  let chars = 0;
  let tokens = 0;
  // string | string[] | number[] (token ids) | number[][]: two levels, no deeper.
  const one = (x: unknown, depth: number): void => {
    if (typeof x === 'string') chars += x.length;
    else if (typeof x === 'number') tokens++;
    else if (Array.isArray(x) && depth < 2) for (const y of x) one(y, depth + 1);
  };
  one(input, 0);
  return { promptTokens: tokensOf(chars) + tokens, maxTokens: 0 };
}
