/**
 * Redaction for support bundles: config by allow-list (only non-secret settings keep their
 * value), structured log fields by name, free text by pattern, and finally every known
 * secret value (master keys, secret settings, decrypted stored secrets) wherever it appears.
 */
export const MASK = '[redacted]';

export interface Redaction {
  readonly file: string;
  readonly rule: string;
  readonly count: number;
}

/** Field names whose values never leave the appliance (logs, JSON). */
export const SENSITIVE_FIELD = /(pass(word)?|secret|token|authorization|cookie|api[_-]?key|private|credential|prompt|messages|completion|content|input|email)/i;

/** Troubleshoot-style patterns for free text. */
export const PATTERNS: readonly { rule: string; re: RegExp; replace: string }[] = [
  { rule: 'bearer-token', re: /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi, replace: `$1 ${MASK}` },
  { rule: 'enclave-api-key', re: /\benk_[A-Za-z0-9_-]{8,}/g, replace: MASK },
  { rule: 'provider-api-key', re: /\bsk-[A-Za-z0-9_-]{8,}/g, replace: MASK },
  { rule: 'url-credentials', re: /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]*:[^\s/@]*@/gi, replace: `$1${MASK}@` },
  { rule: 'key-value-secret', re: /\b((?:pass(?:word)?|secret|token|api[_-]?key)\s*[=:]\s*)("?)[^\s",;&]+\2/gi, replace: `$1${MASK}` },
  { rule: 'enclave-ciphertext', re: /\benc:v1:[0-9a-f]{16}:[A-Za-z0-9_-]+/g, replace: MASK },
  { rule: 'pem-private-key', re: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, replace: MASK },
];

export class Redactor {
  private readonly counts = new Map<string, number>();
  private readonly secrets: string[];

  /** `secrets`: exact values that must appear nowhere (short values are ignored as too generic). */
  constructor(secrets: Iterable<string>) {
    const set = new Set<string>();
    for (const s of secrets) if (s && s.length >= 6) set.add(s);
    // longest first, so a value containing another is replaced whole
    this.secrets = [...set].sort((a, b) => b.length - a.length);
  }

  private note(file: string, rule: string, n: number): void {
    if (!n) return;
    const k = `${file}\u0000${rule}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + n);
  }

  /** Records a redaction done elsewhere (allow-listed config). */
  record(file: string, rule: string, n = 1): void {
    this.note(file, rule, n);
  }

  text(file: string, input: string): string {
    let out = input;
    for (const p of PATTERNS) {
      let n = 0;
      out = out.replace(p.re, (...m: unknown[]) => {
        n++;
        return p.replace.replace(/\$(\d)/g, (_s, i: string) => String(m[Number(i)] ?? ''));
      });
      this.note(file, p.rule, n);
    }
    return this.known(file, out);
  }

  /** Replaces known secret values (and their base64/hex/URL-encoded forms). */
  known(file: string, input: string): string {
    let out = input;
    for (const s of this.secrets) {
      for (const form of new Set([s, encodeURIComponent(s), Buffer.from(s).toString('base64'), Buffer.from(s).toString('hex')])) {
        if (!out.includes(form)) continue;
        const parts = out.split(form);
        this.note(file, 'known-secret-value', parts.length - 1);
        out = parts.join(MASK);
      }
    }
    return out;
  }

  /** Redacts a JSON value: sensitive field names masked, strings pattern-scanned. */
  json(file: string, value: unknown, key?: string): unknown {
    if (key !== undefined && SENSITIVE_FIELD.test(key) && value !== null && value !== undefined && value !== '') {
      this.note(file, `field:${key}`, 1);
      return MASK;
    }
    if (typeof value === 'string') return this.text(file, value);
    if (Array.isArray(value)) return value.map((v) => this.json(file, v));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, this.json(file, v, k)]));
    }
    return value;
  }

  /** One log line: JSON lines field by field, anything else as text. */
  logLine(file: string, line: string): string {
    const t = line.trim();
    if (t.startsWith('{')) {
      try {
        return JSON.stringify(this.json(file, JSON.parse(t)));
      } catch {
        /* not JSON after all */
      }
    }
    return this.text(file, line);
  }

  report(): Redaction[] {
    return [...this.counts].map(([k, count]) => {
      const [file, rule] = k.split('\u0000') as [string, string];
      return { file, rule, count };
    });
  }
}
