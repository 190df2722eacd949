/**
 * Batch input files: JSONL, one request per line, validated line by line at upload so a
 * bad file is refused with every problem named (line numbers are 1-based):
 *   {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "…", "messages": […]}}
 */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/embeddings'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

export interface BatchLine {
  readonly line: number;
  readonly customId: string;
  readonly url: BatchEndpoint;
  readonly body: Record<string, unknown>;
}

export interface LineProblem {
  readonly line: number;
  readonly message: string;
}

export interface ParsedFile {
  readonly lines: BatchLine[];
  readonly problems: LineProblem[];
}

const MAX_CUSTOM_ID = 512;
/** At most this many problems are reported (the first ones). */
export const MAX_PROBLEMS = 20;

export function parseBatchFile(text: string, o: { maxLines: number }): ParsedFile {
  const lines: BatchLine[] = [];
  const problems: LineProblem[] = [];
  const seen = new Set<string>();
  const raw = text.split('\n');
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const src = raw[i]!.replace(/\r$/, '');
    if (src.trim() === '') continue;
    n++;
    const lineNo = i + 1;
    if (n > o.maxLines) {
      problems.push({ line: lineNo, message: `too many requests: a batch file holds at most ${o.maxLines} lines` });
      break;
    }
    const problem = (message: string): void => {
      if (problems.length < MAX_PROBLEMS) problems.push({ line: lineNo, message });
    };
    let v: unknown;
    try {
      v = JSON.parse(src);
    } catch (e) {
      problem(`not valid JSON (${(e as Error).message})`);
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      problem('each line must be a JSON object');
      continue;
    }
    const o2 = v as Record<string, unknown>;
    const customId = o2.custom_id;
    if (typeof customId !== 'string' || customId.length === 0) {
      problem('custom_id is required (a non-empty string)');
      continue;
    }
    if (customId.length > MAX_CUSTOM_ID) {
      problem(`custom_id is longer than ${MAX_CUSTOM_ID} characters`);
      continue;
    }
    if (seen.has(customId)) {
      problem(`custom_id "${customId}" is used more than once; each request needs its own`);
      continue;
    }
    seen.add(customId);
    if (o2.method !== 'POST') {
      problem('method must be "POST"');
      continue;
    }
    if (typeof o2.url !== 'string' || !(BATCH_ENDPOINTS as readonly string[]).includes(o2.url)) {
      problem(`url must be one of ${BATCH_ENDPOINTS.join(', ')}`);
      continue;
    }
    const body = o2.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      problem('body must be a JSON object (the request you would send to the url)');
      continue;
    }
    const b = body as Record<string, unknown>;
    if (typeof b.model !== 'string' || b.model === '') {
      problem('body.model is required');
      continue;
    }
    if (o2.url === '/v1/chat/completions') {
      if (!Array.isArray(b.messages) || b.messages.length === 0) {
        problem('body.messages must be a non-empty array');
        continue;
      }
      if (b.stream === true) {
        problem('body.stream is not supported in a batch');
        continue;
      }
    } else if (typeof b.input !== 'string' && !Array.isArray(b.input)) {
      problem('body.input must be a string or an array');
      continue;
    }
    lines.push({ line: lineNo, customId, url: o2.url as BatchEndpoint, body: b });
  }
  if (n === 0 && problems.length === 0) problems.push({ line: 0, message: 'the file holds no requests' });
  return { lines, problems };
}

export function describeProblems(problems: readonly LineProblem[]): string {
  return problems.map((p) => (p.line ? `line ${p.line}: ${p.message}` : p.message)).join('; ');
}
