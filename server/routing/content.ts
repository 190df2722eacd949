/**
 * Content rules: detectors over the text of a request (never stored, never logged), and
 * redaction with typed placeholders. Each detector returns match ranges; validators cut
 * false positives (IBAN mod-97, card Luhn). Hits are reported as counts per detector type.
 */
export const DETECTORS = ['email', 'phone', 'iban', 'card', 'national_id', 'secret'] as const;
export type Detector = (typeof DETECTORS)[number];
export type ContentAction = 'allow' | 'redact' | 'route_local' | 'block';
export const ACTION_RANK: Record<ContentAction, number> = { allow: 0, redact: 1, route_local: 2, block: 3 };

export interface NationalIdPattern {
  readonly name: string;
  /** A JavaScript regular expression source (no flags; matched globally). */
  readonly pattern: string;
}

interface Rule {
  readonly type: Detector;
  readonly re: RegExp;
  readonly valid?: (m: string) => boolean;
}

const SECRET_RES = [
  /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)/g,
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, // AWS access key id
  /\bAIza[0-9A-Za-z_-]{35}\b/g, // Google API key
  /\bgh[pousr]_[0-9A-Za-z]{36,}\b/g, // GitHub tokens
  /\bxox[abprs]-[0-9A-Za-z-]{10,}\b/g, // Slack tokens
  /\bsk-(?:proj-|ant-)?[0-9A-Za-z_-]{20,}\b/g, // OpenAI / Anthropic style keys
  /\benk_[0-9A-Za-z_]{8,}\b/g, // Enclave API keys
];

export function luhn(digits: string): boolean {
  const d = digits.replace(/\D/g, '');
  if (d.length < 13 || d.length > 19) return false;
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let n = d.charCodeAt(d.length - 1 - i) - 48;
    if (i % 2 === 1) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
  }
  return sum % 10 === 0;
}

export function ibanValid(s: string): boolean {
  const v = s.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(v)) return false;
  const r = v.slice(4) + v.slice(0, 4);
  let rem = 0;
  for (const ch of r) {
    const code = ch.charCodeAt(0);
    const part = code >= 65 ? String(code - 55) : ch;
    for (const digit of part) rem = (rem * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return rem === 1;
}

const BASE_RULES: readonly Rule[] = [
  ...SECRET_RES.map((re) => ({ type: 'secret' as const, re })),
  { type: 'email', re: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g },
  { type: 'iban', re: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g, valid: ibanValid },
  { type: 'card', re: /\b\d(?:[ -]?\d){12,18}\b/g, valid: luhn },
  { type: 'phone', re: /(?<![\w+])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}(?!\w)/g },
];

export class ContentScanner {
  private readonly rules: readonly Rule[];
  constructor(nationalIds: readonly NationalIdPattern[] = []) {
    const ids: Rule[] = [];
    for (const p of nationalIds) {
      try {
        ids.push({ type: 'national_id', re: new RegExp(p.pattern, 'g') });
      } catch {
        // An invalid pattern is refused when the policy is saved; ignore here.
      }
    }
    // Order matters: secrets and structured ids before the looser phone pattern.
    this.rules = [...BASE_RULES.slice(0, SECRET_RES.length + 3), ...ids, ...BASE_RULES.slice(SECRET_RES.length + 3)];
  }

  /** Counts of hits per detector in `texts` (only detectors in `enabled`). */
  scan(texts: readonly string[], enabled: ReadonlySet<Detector>): Partial<Record<Detector, number>> {
    const hits: Partial<Record<Detector, number>> = {};
    for (const t of texts) this.walk(t, enabled, (type) => void (hits[type] = (hits[type] ?? 0) + 1));
    return hits;
  }

  /** `text` with every enabled hit replaced by `[REDACTED_<TYPE>]`. */
  redact(text: string, enabled: ReadonlySet<Detector>): string {
    const ranges: [number, number, Detector][] = [];
    this.walk(text, enabled, (type, start, end) => ranges.push([start, end, type]));
    if (!ranges.length) return text;
    ranges.sort((a, b) => a[0] - b[0]);
    let out = '';
    let pos = 0;
    for (const [s, e, type] of ranges) {
      if (s < pos) continue;
      out += text.slice(pos, s) + `[REDACTED_${type.toUpperCase()}]`;
      pos = e;
    }
    return out + text.slice(pos);
  }

  private walk(text: string, enabled: ReadonlySet<Detector>, hit: (type: Detector, start: number, end: number) => void): void {
    if (!text) return;
    const taken: [number, number][] = [];
    const overlaps = (s: number, e: number): boolean => taken.some(([a, b]) => s < b && e > a);
    for (const r of this.rules) {
      if (!enabled.has(r.type)) continue;
      r.re.lastIndex = 0;
      for (let m = r.re.exec(text); m; m = r.re.exec(text)) {
        if (m[0].length === 0) {
          r.re.lastIndex++;
          continue;
        }
        const s = m.index;
        const e = s + m[0].length;
        if (overlaps(s, e)) continue;
        if (r.valid && !r.valid(m[0])) continue;
        if (r.type === 'phone' && m[0].replace(/\D/g, '').length < 7) continue;
        taken.push([s, e]);
        hit(r.type, s, e);
      }
    }
  }
}

/** Every piece of user-supplied text in a chat request's messages (strings and text parts). */
export function messageTexts(messages: readonly any[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    if (typeof m?.content === 'string') out.push(m.content);
    else if (Array.isArray(m?.content)) for (const p of m.content) if (typeof p?.text === 'string') out.push(p.text);
    for (const tc of m?.tool_calls ?? []) if (typeof tc?.function?.arguments === 'string') out.push(tc.function.arguments);
  }
  return out;
}

/** A copy of `messages` with their text redacted (the original is left untouched for local calls). */
export function redactMessages(messages: readonly any[], scanner: ContentScanner, enabled: ReadonlySet<Detector>): any[] {
  return messages.map((m) => {
    const c = { ...m };
    if (typeof m?.content === 'string') c.content = scanner.redact(m.content, enabled);
    else if (Array.isArray(m?.content)) c.content = m.content.map((p: any) => (typeof p?.text === 'string' ? { ...p, text: scanner.redact(p.text, enabled) } : p));
    if (Array.isArray(m?.tool_calls)) {
      c.tool_calls = m.tool_calls.map((tc: any) =>
        typeof tc?.function?.arguments === 'string' ? { ...tc, function: { ...tc.function, arguments: scanner.redact(tc.function.arguments, enabled) } } : tc,
      );
    }
    return c;
  });
}
