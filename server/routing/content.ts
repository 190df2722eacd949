import RE2 from 're2';

/**
 * Content rules: detectors over the text of a request (never stored, never logged), and
 * redaction with typed placeholders. Hits are reported as counts per detector type.
 *
 * Every detector runs in time linear in the text, whatever the text (docs/security.md,
 * "Content rules and outbound requests"): one tenant's prompt must not stall the process
 * that serves every tenant. So:
 *
 * - The built-in detectors are not regular expressions. Each one tokenises — walks the text
 *   once, finds a candidate by its first character(s) and reads the candidate forward over
 *   a character class — then validates the token in code (length, word boundaries, Luhn,
 *   IBAN mod-97). A candidate's forward read never starts again inside a token already read,
 *   so no character is read more than a small constant number of times.
 * - Tenant patterns (`nationalIdPatterns`) are compiled with RE2, an automaton engine whose
 *   matching time is linear in the input; a pattern RE2 cannot compile (backreferences,
 *   lookaround) is refused when the policy is saved (`compileTenantPattern`).
 * - Text is scanned in slices of at most `scanSliceChars` characters (bootstrap setting
 *   ENCLAVE_CONTENT_SCAN_SLICE_CHARS, `configureContentScan`): every slice is scanned, none
 *   is skipped. Built-in detectors may read a token that starts in one slice on into the
 *   next (a card number or a PEM block across the boundary is found whole); a tenant
 *   pattern sees its slice plus `PATTERN_OVERLAP` characters, so a match that starts in a
 *   slice and is shorter than that is found whole.
 * - A tenant pattern is matched at most `MAX_PATTERN_HITS` times per text; past that, the
 *   rest of the text counts as one more hit of it (redaction replaces it whole), so a
 *   pattern that matches everywhere cannot cost one native call per character.
 */
export const DETECTORS = ['email', 'phone', 'iban', 'card', 'national_id', 'secret'] as const;
export type Detector = (typeof DETECTORS)[number];
export type ContentAction = 'allow' | 'redact' | 'route_local' | 'block';
export const ACTION_RANK: Record<ContentAction, number> = { allow: 0, redact: 1, route_local: 2, block: 3 };

export interface NationalIdPattern {
  readonly name: string;
  /** A regular expression source in RE2 syntax (no backreferences or lookaround; matched globally). */
  readonly pattern: string;
}

/** Characters a tenant pattern sees past the end of its slice (a match starting in the slice may end there). */
export const PATTERN_OVERLAP = 1024;
/** Matches of one tenant pattern per text before the rest of the text counts as one hit. */
export const MAX_PATTERN_HITS = 1000;
export const DEFAULT_SCAN_SLICE_CHARS = 65_536;

let scanSliceChars = DEFAULT_SCAN_SLICE_CHARS;

/** Process-wide, set once by the composition root from ENCLAVE_CONTENT_SCAN_SLICE_CHARS. */
export function configureContentScan(o: { sliceChars: number }): void {
  if (!Number.isSafeInteger(o.sliceChars) || o.sliceChars < 1024) throw new Error('content scan slice must be a whole number ≥ 1024 characters');
  scanSliceChars = o.sliceChars;
}

/**
 * Compiles a tenant pattern with RE2 (global). Throws an Error whose message says why when RE2
 * cannot compile it — the policy schema turns that into a 400 at save time.
 */
export function compileTenantPattern(source: string): RE2 {
  return new RE2(source, 'g');
}

/** Why RE2 refuses `source`, or null when it compiles. */
export function tenantPatternError(source: string): string | null {
  try {
    compileTenantPattern(source);
    return null;
  } catch (e) {
    return (e as Error).message || 'not a valid regular expression';
  }
}

// ---- character classes ------------------------------------------------------------------

const WORD = 1; // [A-Za-z0-9_] (JavaScript's \w: ASCII only)
const LOCAL = 2; // e-mail local part [A-Za-z0-9._%+-]
const DOMAIN = 4; // e-mail domain [A-Za-z0-9.-]
const DIGIT = 8;
const ALNUM = 16;
const LETTER = 32;
const UPPER = 64;
const CLS = new Uint8Array(128);
for (let c = 48; c <= 57; c++) CLS[c] = WORD | LOCAL | DOMAIN | DIGIT | ALNUM;
for (let c = 65; c <= 90; c++) CLS[c] = WORD | LOCAL | DOMAIN | ALNUM | LETTER | UPPER;
for (let c = 97; c <= 122; c++) CLS[c] = WORD | LOCAL | DOMAIN | ALNUM | LETTER;
CLS[95] = WORD | LOCAL; // _
CLS[46] = LOCAL | DOMAIN; // .
CLS[45] = LOCAL | DOMAIN; // -
CLS[37] = LOCAL; // %
CLS[43] = LOCAL; // +

/** The class bits of the character at `i` (0 outside the text and for non-ASCII). */
function cls(t: string, i: number): number {
  const c = t.charCodeAt(i); // NaN outside the text
  return c < 128 ? CLS[c]! : 0;
}
const isWord = (t: string, i: number): boolean => (cls(t, i) & WORD) !== 0;
/** The first index ≥ i whose character lacks every bit of `mask`. */
function runEnd(t: string, i: number, mask: number): number {
  while ((cls(t, i) & mask) !== 0) i++;
  return i;
}

/**
 * Jumps to the next place a detector can start, with a native search for a pattern of fixed
 * width (a character class or a few literals: constant work per position, so linear). The
 * answer is remembered per text (strings are immutable): slices after the first reuse it
 * instead of searching to the end of the text again, which would be quadratic in slices.
 */
class Seek {
  private t: string | undefined;
  private from = 0;
  private at = 0;
  constructor(private readonly re: RegExp) {}
  /** The next candidate position ≥ i, or `end` when there is none before it. */
  next(t: string, i: number, end: number): number {
    if (t !== this.t || i < this.from || i > this.at) {
      this.re.lastIndex = i;
      const m = this.re.exec(t);
      this.t = t;
      this.from = i;
      this.at = m ? m.index : Number.POSITIVE_INFINITY;
    }
    return this.at < end ? this.at : end;
  }
}
const SEEK_TOKEN = new Seek(/AKIA|ASIA|AIza|gh[pousr]_|xox[abprs]-|sk-|enk_/g);
const SEEK_DIGIT = new Seek(/[0-9]/g);
const SEEK_PHONE = new Seek(/[0-9+(]/g);
const SEEK_IBAN = new Seek(/[A-Z]{2}[0-9]{2}/g);

// ---- validators -------------------------------------------------------------------------

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

// ---- built-in detectors -----------------------------------------------------------------

/**
 * A detector reports the matches that START in [from, to) of `t`, in order and without
 * overlap, by calling `hit(start, end)`. It may read past `to` to finish a token.
 */
type Find = (t: string, from: number, to: number, hit: Hit) => void;
/** `claim` false: the range is reported (counted, redacted) but later rules still scan it. */
type Hit = (s: number, e: number, claim?: boolean) => void;

/** PEM private keys: from the BEGIN line to the END line, or to the end of the text when cut off. */
const PEM_HEAD = /(?:[A-Z]+ )?PRIVATE KEY-----/y;
const findPem: Find = (t, from, to, hit) => {
  let i = t.indexOf('-----BEGIN ', from);
  while (i >= 0 && i < to) {
    PEM_HEAD.lastIndex = i + 11;
    if (!PEM_HEAD.test(t)) {
      i = t.indexOf('-----BEGIN ', i + 1);
      continue;
    }
    let end = t.length;
    for (let j = t.indexOf('-----END ', PEM_HEAD.lastIndex); j >= 0; j = t.indexOf('-----END ', j + 1)) {
      PEM_HEAD.lastIndex = j + 9;
      if (PEM_HEAD.test(t)) {
        end = PEM_HEAD.lastIndex;
        break;
      }
    }
    hit(i, end);
    if (end >= t.length) return;
    i = t.indexOf('-----BEGIN ', end);
  }
};

const GH = /^gh[pousr]_[0-9A-Za-z]{36,}$/;
/**
 * API tokens by their prefixes (AWS key ids, Google API keys, GitHub, Slack, OpenAI/Anthropic
 * style `sk-`, Enclave `enk_`), read at the start of each word.
 */
const findTokens: Find = (t, from, to, hit) => {
  let i = from;
  while ((i = SEEK_TOKEN.next(t, i, to)) < to) {
    if (isWord(t, i - 1)) {
      i++;
      continue;
    }
    const word = runEnd(t, i, WORD); // this word [i, word)
    let end = -1;
    const c = t.charCodeAt(i);
    if (c === 65 /* A */) {
      if (word - i === 20 && (t.startsWith('AKIA', i) || t.startsWith('ASIA', i)) && allUpperOrDigit(t, i + 4, word)) end = word;
      else if (t.startsWith('AIza', i) && i + 39 <= t.length && every(t, i + 4, i + 39, WORD | 128) && boundary(t, i + 39)) end = i + 39;
    } else if (c === 103 /* g */) {
      if (word - i >= 40 && GH.test(t.slice(i, word))) end = word;
    } else if (c === 101 /* e */) {
      if (word - i >= 12 && t.startsWith('enk_', i)) end = word;
    } else if (c === 120 /* x */ && t.startsWith('xox', i) && 'abprs'.includes(t[i + 3] ?? ' ') && t[i + 4] === '-') {
      end = dashedEnd(t, i + 5, 10, ALNUM);
    } else if (c === 115 /* s */ && t.startsWith('sk-', i)) {
      end = dashedEnd(t, i + 3, 20, WORD);
    }
    if (end > 0) {
      hit(i, end);
      i = end;
    } else i = word;
  }
};
function allUpperOrDigit(t: string, i: number, e: number): boolean {
  for (; i < e; i++) if ((cls(t, i) & (UPPER | DIGIT)) === 0) return false;
  return true;
}
/** WORD | 128 stands for "word character or '-'" (Google keys). */
function every(t: string, i: number, e: number, mask: number): boolean {
  for (; i < e; i++) {
    if (mask & 128 && t.charCodeAt(i) === 45) continue;
    if ((cls(t, i) & mask) === 0) return false;
  }
  return true;
}
/** A word boundary before index i (as JavaScript's \b: ASCII word characters). */
const boundary = (t: string, i: number): boolean => isWord(t, i - 1) !== isWord(t, i);
/**
 * The end of a token body of `body` characters and '-' starting at i that is at least `min`
 * long and ends on a word boundary (trailing dashes dropped), or -1. If the body is followed
 * by a word character outside the class (`_` for Slack tokens), it ends at its last dash.
 */
function dashedEnd(t: string, i: number, min: number, body: number): number {
  let e = i;
  while ((cls(t, e) & body) !== 0 || t.charCodeAt(e) === 45) e++;
  if (isWord(t, e)) e = t.lastIndexOf('-', e - 1) < i ? i : t.lastIndexOf('-', e - 1);
  while (e > i && t.charCodeAt(e - 1) === 45) e--;
  return e - i >= min ? e : -1;
}

/**
 * E-mail addresses: each '@' with a local part read backwards (at most 64 characters, RFC
 * 5321's limit, and never into the previous address) and a domain read forwards (never past
 * the next '@', so each character is read at most twice); the address starts on a word
 * boundary and its domain ends in a label of two or more letters.
 */
const LOCAL_MAX = 64;
const findEmail: Find = (t, from, to, hit) => {
  let prevEnd = 0;
  for (let at = t.indexOf('@', from); at >= 0 && at <= to + LOCAL_MAX; at = t.indexOf('@', at + 1)) {
    const floor = Math.max(prevEnd, at - LOCAL_MAX);
    let s = at;
    while (s > floor && (cls(t, s - 1) & LOCAL) !== 0) s--;
    while (s < at && !(isWord(t, s) && !isWord(t, s - 1))) s++; // starts on a word boundary
    if (s === at || s < from || s >= to) continue;
    const end = emailDomainEnd(t, at + 1, runEnd(t, at + 1, DOMAIN));
    if (end < 0) continue;
    hit(s, end);
    prevEnd = end;
    at = end - 1;
  }
};
/** The end of the longest domain in [d, run) ending in ".<letters{2,}>" on a word boundary, or -1. */
function emailDomainEnd(t: string, d: number, run: number): number {
  let letters = 0; // letters immediately before index k
  let best = -1;
  for (let k = d; k <= run; k++) {
    // k is a candidate end if [k-letters, k) are letters preceded by '.', and k is a boundary.
    if (letters >= 2 && t.charCodeAt(k - letters - 1) === 46 && k - letters - 1 > d && (cls(t, k) & ALNUM) === 0 && t.charCodeAt(k) !== 95) best = k;
    if (k < run) letters = cls(t, k) & LETTER ? letters + 1 : 0;
  }
  return best;
}

/**
 * Card numbers: groups of digits separated by single spaces or hyphens (or none), 13–19
 * digits in all, Luhn-valid, not inside a longer word or number. Groups of a grouped number
 * have at least 3 digits, so each start tries only a handful of spans.
 */
const findCard: Find = (t, from, to, hit) => {
  let i = from;
  const starts: number[] = [];
  const ends: number[] = [];
  while (i < to) {
    if ((i = SEEK_DIGIT.next(t, i, to)) >= to) break;
    if (isWord(t, i - 1)) {
      i = runEnd(t, i, WORD);
      continue;
    }
    // Read the groups of this number once: [starts[k], ends[k]).
    starts.length = 0;
    ends.length = 0;
    let p = i;
    for (;;) {
      const e = runEnd(t, p, DIGIT);
      starts.push(p);
      ends.push(e);
      const sep = t.charCodeAt(e);
      if ((sep === 32 || sep === 45) && (cls(t, e + 1) & DIGIT) !== 0) p = e + 1;
      else break;
    }
    const last = ends[ends.length - 1]!;
    i = last;
    if (isWord(t, last)) continue; // a number glued to a word is no card
    const grouped = starts.length > 1;
    // From each group (after the last card found), the longest Luhn-valid span of 13–19 digits.
    let found = -1;
    for (let a = 0; a < starts.length && starts[a]! < to; a++) {
      if (starts[a]! < found) continue;
      let digits = 0;
      let bestEnd = -1;
      for (let b = a; b < starts.length; b++) {
        const g = ends[b]! - starts[b]!;
        if (grouped && g < 3) break;
        digits += g;
        if (digits > 19) break;
        if (digits >= 13 && luhn(t.slice(starts[a]!, ends[b]!))) bestEnd = ends[b]!;
      }
      if (bestEnd > 0) {
        hit(starts[a]!, bestEnd);
        found = bestEnd;
      }
    }
  }
};

/**
 * IBANs: two capital letters and two check digits at the start of a word, then letters and
 * digits, optionally in groups separated by single spaces, 15–34 characters without spaces,
 * mod-97 valid. The longest valid prefix that ends at a group end wins (so a following
 * capitalised word is not swallowed). At most 42 characters are read per candidate.
 */
const findIban: Find = (t, from, to, hit) => {
  let i = from;
  const groupEnds: number[] = [];
  const groupOk: boolean[] = [];
  while ((i = SEEK_IBAN.next(t, i, to)) < to) {
    if (isWord(t, i - 1)) {
      i++;
      continue;
    }
    // The check: (BBAN, then country letters and check digits) as a number, mod 97, is 1 —
    // kept as a running remainder of the BBAN so every group end is checked in O(1).
    const head = ((t.charCodeAt(i) - 55) * 10_000 + (t.charCodeAt(i + 1) - 55) * 100 + (t.charCodeAt(i + 2) - 48) * 10 + (t.charCodeAt(i + 3) - 48)) % 97;
    const ok = (rem: number, chars: number): boolean => chars >= 15 && (rem * MOD_1E6 + head) % 97 === 1;
    let p = i + 4;
    let chars = 4;
    let rem = 0;
    groupEnds.length = 0;
    groupOk.length = 0;
    while (chars < 34) {
      const c = t.charCodeAt(p);
      if (cls(t, p) & (UPPER | DIGIT)) {
        rem = c >= 65 ? (rem * 100 + (c - 55)) % 97 : (rem * 10 + (c - 48)) % 97;
        p++;
        chars++;
      } else if (c === 32 && cls(t, p + 1) & (UPPER | DIGIT)) {
        groupEnds.push(p);
        groupOk.push(ok(rem, chars));
        p++;
      } else break;
    }
    groupEnds.push(p);
    groupOk.push(ok(rem, chars));
    let found = -1;
    for (let k = groupEnds.length - 1; k >= 0 && found < 0; k--) if (groupOk[k] && !isWord(t, groupEnds[k]!)) found = groupEnds[k]!;
    if (found > 0) {
      hit(i, found);
      i = found;
    } else i = runEnd(t, i, WORD);
  }
};
const MOD_1E6 = 1_000_000 % 97;

/**
 * Phone numbers: an optional '+', then digit groups separated by single spaces, dots,
 * hyphens or parentheses; 7–15 digits (E.164's maximum), at most 24 characters, not glued to
 * a word, a '+' or a longer number. Dates (2024-01-15) and dotted IPv4 addresses are not
 * phone numbers.
 */
const PHONE_MAX_CHARS = 24;
const DATE = /^\d{4}([-/.])\d{2}\1\d{2}$/;
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const findPhone: Find = (t, from, to, hit) => {
  let i = from;
  while ((i = SEEK_PHONE.next(t, i, to)) < to) {
    const c = t.charCodeAt(i);
    const startsHere = (c === 43 && (cls(t, i + 1) & DIGIT) !== 0) || (cls(t, i) & DIGIT) !== 0 || (c === 40 && (cls(t, i + 1) & DIGIT) !== 0);
    if (!startsHere || isWord(t, i - 1) || t.charCodeAt(i - 1) === 43) {
      i++;
      continue;
    }
    let p = c === 43 ? i + 1 : i;
    let digits = 0;
    let lastDigit = -1;
    let prevSep = false;
    while (p - i <= PHONE_MAX_CHARS) {
      const d = t.charCodeAt(p);
      if (d >= 48 && d <= 57) {
        digits++;
        lastDigit = p;
        prevSep = false;
      } else if (d === 40 || d === 41) {
        prevSep = false;
      } else if ((d === 32 || d === 46 || d === 45) && !prevSep) {
        prevSep = true;
      } else break;
      p++;
    }
    // Skip the rest of a number that goes on past the limit: it is not a phone number, nor is any part of it.
    if (p - i > PHONE_MAX_CHARS) {
      i = skipNumber(t, p);
      continue;
    }
    let e = lastDigit + 1;
    if (t.charCodeAt(e) === 41) e++; // a closing parenthesis right after the last digit
    const s = c === 40 ? i + 1 : i;
    const text = t.slice(s, e);
    if (digits >= 7 && digits <= 15 && !isWord(t, e) && !DATE.test(text) && !IPV4.test(text)) {
      hit(s, e);
    }
    i = Math.max(p, i + 1);
  }
};
/** The end of a run of digits and the separators phone numbers use. */
function skipNumber(t: string, p: number): number {
  for (;;) {
    const d = t.charCodeAt(p);
    if ((d >= 48 && d <= 57) || d === 32 || d === 46 || d === 45 || d === 40 || d === 41 || d === 43) p++;
    else return p;
  }
}

interface Rule {
  readonly type: Detector;
  readonly find: Find;
}

// Order matters: secrets and structured ids first, national ids, then the looser phone rule.
const HEAD: readonly Rule[] = [
  { type: 'secret', find: findPem },
  { type: 'secret', find: findTokens },
  { type: 'email', find: findEmail },
  { type: 'iban', find: findIban },
  { type: 'card', find: findCard },
];
const TAIL: readonly Rule[] = [{ type: 'phone', find: findPhone }];

/** A tenant pattern as a rule: RE2 over the slice plus PATTERN_OVERLAP, at most MAX_PATTERN_HITS per text. */
function patternRule(re: RE2): Rule {
  let budgetFor: string | undefined;
  let used = 0;
  return {
    type: 'national_id',
    find: (t, from, to, hit) => {
      if (budgetFor !== t || from === 0) {
        budgetFor = t;
        used = 0;
      }
      if (used > MAX_PATTERN_HITS) return;
      const windowEnd = Math.min(t.length, to + PATTERN_OVERLAP);
      const w = from === 0 && windowEnd === t.length ? t : t.slice(from, windowEnd);
      re.lastIndex = 0;
      for (let m = re.exec(w); m; m = re.exec(w)) {
        if (m.index >= to - from) break;
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        if (++used > MAX_PATTERN_HITS) {
          // The rest counts as one hit (redacted whole) without hiding it from the rules after this one.
          hit(from + m.index, t.length, false);
          return;
        }
        hit(from + m.index, from + m.index + m[0].length);
      }
    },
  };
}

/** Sorted, disjoint [start, end) ranges already claimed by an earlier rule. */
class Taken {
  private s: number[] = [];
  private e: number[] = [];
  overlaps(a: number, b: number): boolean {
    // The last range starting before b: it overlaps iff it ends after a.
    let lo = 0;
    let hi = this.s.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.s[mid]! < b) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && this.e[lo - 1]! > a;
  }
  /** Adds ranges (sorted, disjoint, none overlapping these): a linear merge. */
  merge(add: readonly number[]): void {
    if (!add.length) return;
    const s: number[] = [];
    const e: number[] = [];
    let i = 0;
    let j = 0;
    while (i < this.s.length || j < add.length) {
      if (j >= add.length || (i < this.s.length && this.s[i]! < add[j]!)) {
        s.push(this.s[i]!);
        e.push(this.e[i]!);
        i++;
      } else {
        s.push(add[j]!);
        e.push(add[j + 1]!);
        j += 2;
      }
    }
    this.s = s;
    this.e = e;
  }
}

export class ContentScanner {
  private readonly rules: readonly Rule[];
  constructor(nationalIds: readonly NationalIdPattern[] = []) {
    const ids: Rule[] = [];
    for (const p of nationalIds) {
      try {
        ids.push(patternRule(compileTenantPattern(p.pattern)));
      } catch {
        // Refused when the policy is saved (policySchema); a stored pattern that RE2 no longer
        // compiles is ignored rather than run on a backtracking engine.
      }
    }
    this.rules = [...HEAD, ...ids, ...TAIL];
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
      if (s < pos) {
        pos = Math.max(pos, e); // overlaps the previous placeholder: it covers this too
        continue;
      }
      out += text.slice(pos, s) + `[REDACTED_${type.toUpperCase()}]`;
      pos = e;
    }
    return out + text.slice(pos);
  }

  /** Every slice of `text`, each rule in order; a hit overlapping an earlier rule's is dropped. */
  private walk(text: string, enabled: ReadonlySet<Detector>, hit: (type: Detector, start: number, end: number) => void): void {
    if (!text) return;
    const taken = new Taken();
    const slice = scanSliceChars;
    for (let from = 0; from < text.length; from += slice) {
      const to = Math.min(text.length, from + slice);
      for (const r of this.rules) {
        if (!enabled.has(r.type)) continue;
        const mine: number[] = [];
        let lastEnd = -1;
        r.find(text, from, to, (s, e, claim = true) => {
          if (!claim) return hit(r.type, s, e);
          if (s < lastEnd || taken.overlaps(s, e)) return;
          mine.push(s, e);
          lastEnd = e;
          hit(r.type, s, e);
        });
        taken.merge(mine);
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
