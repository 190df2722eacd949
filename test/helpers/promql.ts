import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { DASHBOARD_DIR } from '../../scripts/grafana-dashboards.js';

export const RULES_DIR = path.join(process.cwd(), 'compose/prometheus/rules');

/**
 * Just enough PromQL and exposition-format parsing for the observability tests: the metric
 * names an expression selects, and the samples of a /metrics text.
 */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2', 'start', 'end']);

/** Metric names selected by a PromQL expression (functions, label names, keywords and durations removed). */
export function metricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range / subquery durations
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // grouping labels
  s = s.replace(/\boffset\s+-?[0-9a-z]+/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, id, call] = m;
    if (call) continue; // a function or aggregation
    if (KEYWORDS.has(id!.toLowerCase())) continue;
    if (/^\d/.test(id!)) continue;
    names.add(id!);
  }
  return [...names];
}

/** The family a sample name belongs to (histogram/summary parts map to their base name). */
export function familyOf(sample: string, families: Set<string>): string {
  for (const suffix of ['_bucket', '_sum', '_count', '_created']) {
    if (sample.endsWith(suffix) && families.has(sample.slice(0, -suffix.length))) return sample.slice(0, -suffix.length);
  }
  return sample;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (what prom-client writes). */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** Every PromQL expression in the shipped dashboards and alert rules, with where it is. */
export function shippedQueries(): { where: string; expr: string; file: string; title: string }[] {
  const out: { where: string; expr: string; file: string; title: string }[] = [];
  for (const f of readdirSync(DASHBOARD_DIR).filter((x) => x.endsWith('.json'))) {
    const d = JSON.parse(readFileSync(path.join(DASHBOARD_DIR, f), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
    for (const p of d.panels) for (const t of p.targets ?? []) out.push({ where: `${f}: ${p.title}`, expr: t.expr, file: f, title: p.title });
  }
  for (const f of readdirSync(RULES_DIR)) {
    const r = parse(readFileSync(path.join(RULES_DIR, f), 'utf8')) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
    for (const g of r.groups) for (const rule of g.rules) out.push({ where: `${f}: ${rule.alert ?? rule.record}`, expr: String(rule.expr), file: f, title: String(rule.alert ?? rule.record) });
  }
  return out;
}


/**
 * `promtool check config` on the shipped prometheus.yml. The compose secrets it names
 * (`credentials_file: /run/secrets/…`, mounted into the container) do not exist on the test
 * host and promtool checks that they do: the check runs on a copy of the config directory
 * whose /run/secrets paths point at placeholder files, so everything else (rule files
 * included) is checked as shipped.
 */
export function promtoolCheckConfig(file: string, promtool = 'promtool'): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-promtool-'));
  try {
    const copy = path.join(dir, 'prometheus');
    cpSync(path.dirname(file), copy, { recursive: true });
    const secrets = path.join(dir, 'secrets');
    mkdirSync(secrets);
    const text = readFileSync(file, 'utf8').replace(/\/run\/secrets\/([A-Za-z0-9_.-]+)/g, (_, name: string) => {
      writeFileSync(path.join(secrets, name), 'placeholder-token\n');
      return path.join(secrets, name);
    });
    const target = path.join(copy, path.basename(file));
    writeFileSync(target, text);
    execFileSync(promtool, ['check', 'config', target], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
