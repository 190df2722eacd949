import { ScimError } from './errors.js';

/**
 * SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): a small recursive-descent
 * parser and an evaluator over resources as they are served (plain JSON), so a filter sees
 * exactly what GET shows and nothing else. Attribute names are case-insensitive; string
 * comparisons too, except for `id` and `externalId` (caseExact in RFC 7643).
 *
 * Beyond the RFC grammar it accepts the form Entra ID sends, a value path followed by a
 * sub-attribute comparison: `emails[type eq "work"].value eq "a@b.c"`.
 */
export type Op = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
type Scalar = string | number | boolean | null;

/** An attribute path: optional extension schema URN (lower-cased), attribute, sub-attribute. */
export interface AttrPath {
  readonly schema?: string;
  readonly attr: string;
  readonly sub?: string;
}

export type Filter =
  | { readonly kind: 'cmp'; readonly path: AttrPath; readonly op: Op; readonly value: Scalar }
  | { readonly kind: 'pr'; readonly path: AttrPath }
  | { readonly kind: 'and' | 'or'; readonly left: Filter; readonly right: Filter }
  | { readonly kind: 'not'; readonly filter: Filter }
  /** `attr[filter]`, optionally `.sub op value` (Entra's form) evaluated on the matching elements. */
  | { readonly kind: 'valuePath'; readonly path: AttrPath; readonly filter: Filter; readonly sub?: string; readonly op?: Op | 'pr'; readonly value?: Scalar };

/** A PATCH target: `attr`, `attr.sub`, `urn:…:attr`, `attr[filter]`, `attr[filter].sub`. */
export interface PatchPath {
  readonly path: AttrPath;
  readonly filter?: Filter;
  readonly sub?: string;
}

const OPS = new Set<string>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']);
const CORE_PREFIX = 'urn:ietf:params:scim:schemas:core:2.0:';
const MAX_FILTER_CHARS = 2000;
const MAX_DEPTH = 16;
const CASE_EXACT = new Set(['id', 'externalid']);

type Token = { t: '(' | ')' | '[' | ']' } | { t: 'str'; v: string } | { t: 'word'; v: string };

function invalid(detail: string): ScimError {
  return new ScimError(400, detail, 'invalidFilter');
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      out.push({ t: c });
      i++;
    } else if (c === '"') {
      // A JSON string: find the closing quote that is not escaped, then let JSON.parse decode it.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw invalid('Unterminated string in filter.');
      try {
        out.push({ t: 'str', v: JSON.parse(text.slice(i, j + 1)) as string });
      } catch {
        throw invalid('Invalid string in filter.');
      }
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !' \t\n\r()[]"'.includes(text[j]!)) j++;
      out.push({ t: 'word', v: text.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** `name`, `name.sub`, `urn:…:Ext:name.sub`; the core schema's URN prefix is dropped. */
export function parseAttrPath(word: string): AttrPath {
  let w = word;
  if (w.toLowerCase().startsWith(CORE_PREFIX)) {
    // urn:ietf:params:scim:schemas:core:2.0:User:userName → userName
    const rest = w.slice(CORE_PREFIX.length);
    const colon = rest.indexOf(':');
    w = colon >= 0 ? rest.slice(colon + 1) : rest;
  }
  let schema: string | undefined;
  if (w.toLowerCase().startsWith('urn:')) {
    const colon = w.lastIndexOf(':');
    schema = w.slice(0, colon).toLowerCase();
    w = w.slice(colon + 1);
  }
  const parts = w.split('.');
  if (parts.length > 2 || parts.some((p) => !/^[A-Za-z$][A-Za-z0-9_$-]*$/.test(p))) throw invalid(`"${word.slice(0, 100)}" is not an attribute path.`);
  return { ...(schema ? { schema } : {}), attr: parts[0]!.toLowerCase(), ...(parts[1] ? { sub: parts[1].toLowerCase() } : {}) };
}

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  done(): boolean {
    return this.i >= this.tokens.length;
  }
  private peek(): Token | undefined {
    return this.tokens[this.i];
  }
  private next(): Token {
    const t = this.tokens[this.i++];
    if (!t) throw invalid('The filter ends too early.');
    return t;
  }
  private expect(t: '(' | ')' | '[' | ']'): void {
    if (this.next().t !== t) throw invalid(`Expected "${t}" in filter.`);
  }
  private isWord(v: string): boolean {
    const t = this.peek();
    return t?.t === 'word' && t.v.toLowerCase() === v;
  }

  filter(): Filter {
    if (++this.depth > MAX_DEPTH) throw invalid('The filter nests too deeply.');
    let left = this.and();
    while (this.isWord('or')) {
      this.i++;
      left = { kind: 'or', left, right: this.and() };
    }
    this.depth--;
    return left;
  }
  private and(): Filter {
    let left = this.unary();
    while (this.isWord('and')) {
      this.i++;
      left = { kind: 'and', left, right: this.unary() };
    }
    return left;
  }
  private unary(): Filter {
    if (this.isWord('not')) {
      this.i++;
      this.expect('(');
      const f = this.filter();
      this.expect(')');
      return { kind: 'not', filter: f };
    }
    if (this.peek()?.t === '(') {
      this.i++;
      const f = this.filter();
      this.expect(')');
      return f;
    }
    return this.attrExp();
  }
  private word(): string {
    const t = this.next();
    if (t.t !== 'word') throw invalid('Expected an attribute name in filter.');
    return t.v;
  }
  private value(): Scalar {
    const t = this.next();
    if (t.t === 'str') return t.v;
    if (t.t !== 'word') throw invalid('Expected a value in filter.');
    const w = t.v.toLowerCase();
    if (w === 'true') return true;
    if (w === 'false') return false;
    if (w === 'null') return null;
    if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t.v)) return Number(t.v);
    throw invalid(`"${t.v.slice(0, 50)}" is not a filter value (strings are quoted).`);
  }
  private op(): Op | 'pr' {
    const w = this.word().toLowerCase();
    if (w === 'pr' || OPS.has(w)) return w as Op | 'pr';
    throw invalid(`"${w.slice(0, 20)}" is not a filter operator.`);
  }
  /** `attr[filter]` with optional `.sub` right after the bracket (one token, e.g. `.value`). */
  private bracket(path: AttrPath): { filter: Filter; sub?: string } {
    if (path.sub) throw invalid('A value filter applies to an attribute, not a sub-attribute.');
    this.expect('[');
    const filter = this.filter();
    this.expect(']');
    const t = this.peek();
    if (t?.t === 'word' && t.v.startsWith('.')) {
      this.i++;
      const sub = t.v.slice(1);
      if (!/^[A-Za-z$][A-Za-z0-9_$-]*$/.test(sub)) throw invalid(`"${sub.slice(0, 50)}" is not a sub-attribute.`);
      return { filter, sub: sub.toLowerCase() };
    }
    return { filter };
  }
  private attrExp(): Filter {
    const path = parseAttrPath(this.word());
    if (this.peek()?.t === '[') {
      const { filter, sub } = this.bracket(path);
      // A value path alone is a filter; with a sub-attribute it needs a comparison.
      if (!sub) return { kind: 'valuePath', path, filter };
      const op = this.op();
      return op === 'pr' ? { kind: 'valuePath', path, filter, sub, op } : { kind: 'valuePath', path, filter, sub, op, value: this.value() };
    }
    const op = this.op();
    if (op === 'pr') return { kind: 'pr', path };
    return { kind: 'cmp', path, op, value: this.value() };
  }
  patchPath(): PatchPath {
    const path = parseAttrPath(this.word());
    if (this.peek()?.t === '[') {
      const { filter, sub } = this.bracket(path);
      return { path, filter, ...(sub ? { sub } : {}) };
    }
    return { path };
  }
}

export function parseFilter(text: string): Filter {
  if (text.length > MAX_FILTER_CHARS) throw invalid(`A filter is at most ${MAX_FILTER_CHARS} characters.`);
  const p = new Parser(tokenize(text));
  const f = p.filter();
  if (!p.done()) throw invalid('Unexpected text after the filter.');
  return f;
}

export function parsePatchPath(text: string): PatchPath {
  try {
    if (text.length > MAX_FILTER_CHARS) throw invalid('The path is too long.');
    const p = new Parser(tokenize(text));
    const r = p.patchPath();
    if (!p.done()) throw invalid('Unexpected text after the path.');
    return r;
  } catch (e) {
    if (e instanceof ScimError) throw new ScimError(400, e.message, 'invalidPath');
    throw e;
  }
}

// --- evaluation --------------------------------------------------------------------------

type Json = unknown;

/** The value of a key of an object, by case-insensitive name. */
export function getCi(obj: Json, name: string): Json {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** The container an attribute path starts from: the resource itself or its extension object. */
function base(resource: Json, path: AttrPath): Json {
  return path.schema ? getCi(resource, path.schema) : resource;
}

/** Every leaf value at a path (multi-valued attributes flattened; complex values compare by `value`). */
function valuesAt(resource: Json, path: AttrPath): Json[] {
  const top = getCi(base(resource, path), path.attr);
  const items = Array.isArray(top) ? top : top === undefined ? [] : [top];
  const out: Json[] = [];
  for (const it of items) {
    const v = path.sub ? getCi(it, path.sub) : it && typeof it === 'object' && !Array.isArray(it) ? getCi(it, 'value') : it;
    if (Array.isArray(v)) out.push(...v);
    else if (v !== undefined) out.push(v);
  }
  return out;
}

function compare(actual: Json, op: Op, expected: Scalar, caseExact: boolean): boolean {
  if (actual === null || actual === undefined) return op === 'eq' ? expected === null : op === 'ne' ? expected !== null : false;
  if (typeof actual === 'string' && typeof expected === 'string') {
    const a = caseExact ? actual : actual.toLowerCase();
    const b = caseExact ? expected : expected.toLowerCase();
    switch (op) {
      case 'eq':
        return a === b;
      case 'ne':
        return a !== b;
      case 'co':
        return a.includes(b);
      case 'sw':
        return a.startsWith(b);
      case 'ew':
        return a.endsWith(b);
      case 'gt':
        return a > b;
      case 'ge':
        return a >= b;
      case 'lt':
        return a < b;
      case 'le':
        return a <= b;
    }
  }
  if (typeof actual === 'boolean' || typeof expected === 'boolean') {
    if (op === 'eq') return actual === expected;
    if (op === 'ne') return actual !== expected;
    throw invalid('Booleans compare only with eq and ne.');
  }
  if (typeof actual === 'number' && typeof expected === 'number') {
    switch (op) {
      case 'eq':
        return actual === expected;
      case 'ne':
        return actual !== expected;
      case 'gt':
        return actual > expected;
      case 'ge':
        return actual >= expected;
      case 'lt':
        return actual < expected;
      case 'le':
        return actual <= expected;
      default:
        throw invalid(`${op} does not apply to numbers.`);
    }
  }
  return op === 'ne';
}

function present(v: Json): boolean {
  return v !== null && v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0);
}

export function matches(resource: Json, f: Filter): boolean {
  switch (f.kind) {
    case 'and':
      return matches(resource, f.left) && matches(resource, f.right);
    case 'or':
      return matches(resource, f.left) || matches(resource, f.right);
    case 'not':
      return !matches(resource, f.filter);
    case 'pr':
      return valuesAt(resource, f.path).some(present);
    case 'cmp': {
      const exact = CASE_EXACT.has(f.path.sub ?? f.path.attr) && !f.path.schema;
      const vals = valuesAt(resource, f.path);
      if (vals.length === 0) return compare(undefined, f.op, f.value, exact);
      return f.op === 'ne' ? vals.every((v) => compare(v, 'ne', f.value, exact)) : vals.some((v) => compare(v, f.op, f.value, exact));
    }
    case 'valuePath': {
      const top = getCi(base(resource, f.path), f.path.attr);
      const items = Array.isArray(top) ? top : top === undefined ? [] : [top];
      return items.some((el) => {
        if (!matches(el, f.filter)) return false;
        if (!f.sub) return true;
        const v = getCi(el, f.sub);
        if (f.op === 'pr') return present(v);
        return compare(v, f.op!, f.value ?? null, CASE_EXACT.has(f.sub));
      });
    }
  }
}

/**
 * The top-level `attr eq "value"` terms of an and-chain (core attributes without a
 * sub-attribute), so a store can narrow its query before the full filter runs.
 */
export function eqTerms(f: Filter): Map<string, Scalar> {
  const out = new Map<string, Scalar>();
  const walk = (x: Filter): void => {
    if (x.kind === 'and') {
      walk(x.left);
      walk(x.right);
    } else if (x.kind === 'cmp' && x.op === 'eq' && !x.path.schema && !x.path.sub) out.set(x.path.attr, x.value);
  };
  walk(f);
  return out;
}

/**
 * E-mail values an and-chain requires (`emails.value eq "x"`, `emails[…].value eq "x"`), when
 * they are printable ASCII without quotes or backslashes: every match has them verbatim (any
 * case) in its stored JSON, so a store may pre-select rows by a case-insensitive substring.
 */
export function emailTerms(f: Filter): string[] {
  const out: string[] = [];
  const plain = (v: Scalar | undefined): v is string => typeof v === 'string' && /^[\x20-\x7e]+$/.test(v) && !/["\\]/.test(v);
  const walk = (x: Filter): void => {
    if (x.kind === 'and') {
      walk(x.left);
      walk(x.right);
    } else if (x.kind === 'cmp' && x.op === 'eq' && !x.path.schema && x.path.attr === 'emails' && (x.path.sub ?? 'value') === 'value' && plain(x.value)) {
      out.push(x.value);
    } else if (x.kind === 'valuePath' && !x.path.schema && x.path.attr === 'emails' && x.sub === 'value' && x.op === 'eq' && plain(x.value)) {
      out.push(x.value);
    }
  };
  walk(f);
  return out;
}

