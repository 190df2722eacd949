import { ScimError } from './errors.js';
import { eqTerms, getCi, matches, parseAttrPath, parsePatchPath, type AttrPath, type Filter, type PatchPath } from './filter.js';

/**
 * SCIM PATCH (RFC 7644 §3.5.2) applied to a resource as JSON: the result then goes through
 * the same validation as a PUT, so PATCH cannot store anything a PUT could not.
 *
 * It accepts what Entra ID and Okta really send besides the RFC's shapes:
 *  - `op` in any case ("Replace", "Add", "Remove");
 *  - `replace`/`add` without a path whose value object has attribute paths as keys
 *    (`{"name.givenName": "…"}`, `{"urn:…:enterprise:2.0:User:department": "…"}`);
 *  - `active` as the string "True"/"False" (coerced by the resource schema afterwards);
 *  - a filtered path that matches nothing in `replace`/`add` (`emails[type eq "work"].value`)
 *    creates the element from the filter's `eq` terms, as both clients expect;
 *  - `remove` of `members` with a value listing the members to remove (Entra), besides the
 *    RFC's `members[value eq "…"]`.
 */
export type Json = unknown;
type Obj = Record<string, Json>;

export const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const SCHEMAS: Record<string, string> = { [ENTERPRISE_USER.toLowerCase()]: ENTERPRISE_USER };

/** Canonical spelling of the attribute names Enclave knows (lower-case → RFC 7643 spelling). */
const NAMES = new Map(
  [
    'schemas', 'id', 'externalId', 'meta', 'userName', 'name', 'formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix',
    'honorificSuffix', 'displayName', 'nickName', 'profileUrl', 'title', 'userType', 'preferredLanguage', 'locale', 'timezone', 'active',
    'emails', 'phoneNumbers', 'ims', 'photos', 'addresses', 'streetAddress', 'locality', 'region', 'postalCode', 'country', 'groups',
    'entitlements', 'roles', 'value', 'display', 'type', 'primary', '$ref', 'members', 'employeeNumber', 'costCenter', 'organization',
    'division', 'department', 'manager',
  ].map((n) => [n.toLowerCase(), n]),
);
const canonical = (lower: string): string => NAMES.get(lower) ?? SCHEMAS[lower] ?? lower;

const isObj = (v: Json): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function keyOf(obj: Obj, lower: string): string | undefined {
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}
function setCi(obj: Obj, lower: string, value: Json): void {
  const k = keyOf(obj, lower);
  if (k !== undefined && k !== canonical(lower)) delete obj[k];
  obj[canonical(lower)] = value;
}
function deleteCi(obj: Obj, lower: string): void {
  const k = keyOf(obj, lower);
  if (k !== undefined) delete obj[k];
}

/** Rewrites every key to its canonical spelling (case-insensitive input), recursively. */
export function canonicalize(v: Json, depth = 0): Json {
  if (depth > 8) throw new ScimError(400, 'The resource nests too deeply.', 'invalidSyntax');
  if (Array.isArray(v)) return v.map((x) => canonicalize(x, depth + 1));
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) out[canonical(k.toLowerCase())] = canonicalize(x, depth + 1);
  return out;
}

/** The object an attribute lives in: the resource, or its extension object (created on write). */
function container(resource: Obj, path: AttrPath, create: boolean): Obj | undefined {
  if (!path.schema) return resource;
  if (!SCHEMAS[path.schema]) throw new ScimError(400, `Schema ${path.schema} is not supported.`, 'invalidPath');
  const existing = getCi(resource, path.schema);
  if (isObj(existing)) return existing;
  if (!create) return undefined;
  const ext: Obj = {};
  setCi(resource, path.schema, ext);
  const schemas = getCi(resource, 'schemas');
  if (Array.isArray(schemas) && !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === path.schema)) schemas.push(SCHEMAS[path.schema]);
  return ext;
}

/** A new element of a multi-valued attribute built from the filter's `eq` terms (`type eq "work"`). */
function elementFromFilter(filter: Filter): Obj {
  const el: Obj = {};
  for (const [k, v] of eqTerms(filter)) el[canonical(k)] = v;
  if (Object.keys(el).length === 0) throw new ScimError(400, 'The filter matches no value to change.', 'noTarget');
  return el;
}

function mergeInto(target: Obj, lower: string, value: Json, mode: 'add' | 'replace'): void {
  const current = getCi(target, lower);
  if (mode === 'add' && Array.isArray(current)) {
    const extra = Array.isArray(value) ? value : [value];
    // Adding a value that is already there (same `value`) is not a second copy (RFC 7644 §3.5.2.1).
    const key = (x: Json): string => JSON.stringify(isObj(x) ? (getCi(x, 'value') ?? x) : x);
    const seen = new Set(current.map(key));
    setCi(target, lower, [...current, ...extra.filter((x) => !seen.has(key(x)))]);
  } else if (isObj(current) && isObj(value)) {
    for (const [k, v] of Object.entries(value)) setCi(current, k.toLowerCase(), v);
  } else {
    setCi(target, lower, value);
  }
}

function write(resource: Obj, p: PatchPath, value: Json, mode: 'add' | 'replace'): void {
  const c = container(resource, p.path, true)!;
  if (p.filter) {
    let items = getCi(c, p.path.attr);
    if (!Array.isArray(items)) {
      items = [];
      setCi(c, p.path.attr, items);
    }
    const list = items as Json[];
    let hits = list.filter((el) => isObj(el) && matches(el, p.filter!)) as Obj[];
    if (hits.length === 0) {
      const el = elementFromFilter(p.filter);
      list.push(el);
      hits = [el];
    }
    for (const el of hits) {
      if (p.sub) setCi(el, p.sub, value);
      else if (isObj(value)) for (const [k, v] of Object.entries(value)) setCi(el, k.toLowerCase(), v);
      else throw new ScimError(400, 'Give an object to replace a filtered value.', 'invalidValue');
    }
    return;
  }
  if (p.path.sub) {
    const cur = getCi(c, p.path.attr);
    if (Array.isArray(cur)) {
      for (const el of cur) if (isObj(el)) setCi(el, p.path.sub, value);
      return;
    }
    const obj = isObj(cur) ? cur : {};
    setCi(obj, p.path.sub, value);
    setCi(c, p.path.attr, obj);
    return;
  }
  mergeInto(c, p.path.attr, value, mode);
}

function remove(resource: Obj, p: PatchPath, value: Json): void {
  const c = container(resource, p.path, false);
  if (!c) return;
  const cur = getCi(c, p.path.attr);
  if (p.filter) {
    if (!Array.isArray(cur)) return;
    if (p.sub) {
      for (const el of cur) if (isObj(el) && matches(el, p.filter)) deleteCi(el, p.sub);
    } else {
      setCi(c, p.path.attr, cur.filter((el) => !(isObj(el) && matches(el, p.filter!))));
    }
    return;
  }
  if (p.path.sub) {
    if (Array.isArray(cur)) {
      for (const el of cur) if (isObj(el)) deleteCi(el, p.path.sub);
    } else if (isObj(cur)) {
      deleteCi(cur, p.path.sub);
    }
    return;
  }
  // Entra: {"op":"Remove","path":"members","value":[{"value":"id"}]} removes just those values.
  if (Array.isArray(cur) && Array.isArray(value) && value.length > 0) {
    const gone = new Set(value.map((v) => String(isObj(v) ? getCi(v, 'value') : v)));
    setCi(c, p.path.attr, cur.filter((el) => !gone.has(String(isObj(el) ? getCi(el, 'value') : el))));
    return;
  }
  deleteCi(c, p.path.attr);
}

export interface PatchOp {
  readonly op: string;
  readonly path?: string | undefined;
  readonly value?: Json;
}

/** Applies the operations in order to a copy of `resource`; the caller validates the result. */
export function applyPatch(resource: Obj, ops: readonly PatchOp[]): Obj {
  const out = structuredClone(resource);
  for (const o of ops) {
    const op = o.op.toLowerCase();
    if (op !== 'add' && op !== 'replace' && op !== 'remove') throw new ScimError(400, `Unknown PATCH op "${o.op.slice(0, 20)}".`, 'invalidSyntax');
    if (op === 'remove') {
      if (!o.path) throw new ScimError(400, 'remove needs a path.', 'noTarget');
      remove(out, parsePatchPath(o.path), o.value);
      continue;
    }
    if (o.value === undefined) throw new ScimError(400, `${o.op} needs a value.`, 'invalidValue');
    if (o.path) {
      write(out, parsePatchPath(o.path), o.value, op);
      continue;
    }
    // No path: the value is an object of attributes; its keys may themselves be paths.
    if (!isObj(o.value)) throw new ScimError(400, `${o.op} without a path needs an object value.`, 'invalidValue');
    for (const [k, v] of Object.entries(o.value)) {
      // An extension given as a whole object ({"urn:…:enterprise:2.0:User": {…}}) merges into it.
      if (SCHEMAS[k.toLowerCase()]) {
        if (!isObj(v)) throw new ScimError(400, `${k} takes an object.`, 'invalidValue');
        for (const [sk, sv] of Object.entries(v)) write(out, { path: { schema: k.toLowerCase(), attr: sk.toLowerCase() } }, sv, op);
        continue;
      }
      let p: AttrPath;
      try {
        p = parseAttrPath(k);
      } catch {
        throw new ScimError(400, `"${k.slice(0, 80)}" is not an attribute.`, 'invalidPath');
      }
      write(out, { path: p }, v, op);
    }
  }
  return out;
}
