import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DASHBOARDS, DASHBOARD_DIR, render } from '../../scripts/grafana-dashboards.js';
import { familyOf, metricNames, promtoolCheckConfig, RULES_DIR, shippedQueries } from '../helpers/promql.js';

const ROOT = process.cwd();

function catalogued(): Set<string> {
  const text = readFileSync(path.join(ROOT, 'docs/metrics.md'), 'utf8');
  return new Set([...text.matchAll(/^\| `(enclave_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));
}

describe('Grafana dashboards and provisioning', () => {
  it('the JSON files are the generator output (scripts/grafana-dashboards.ts --write)', () => {
    const files = readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual(DASHBOARDS.map((d) => d.file).sort());
    for (const d of DASHBOARDS) expect(readFileSync(path.join(DASHBOARD_DIR, d.file), 'utf8'), d.file).toBe(render(d));
  });

  it('the six dashboards, fixed unique uids, the fixed datasource uid everywhere, no sharing placeholders', () => {
    expect(DASHBOARDS.map((d) => d.title)).toEqual([
      'Enclave / Overview',
      'Enclave / Providers',
      'Enclave / Tenants and quotas',
      'Enclave / Queues and jobs',
      'Enclave / Security',
      'Enclave / Licence',
    ]);
    const uids = new Set<string>();
    for (const d of DASHBOARDS) {
      const text = readFileSync(path.join(DASHBOARD_DIR, d.file), 'utf8');
      expect(text, d.file).not.toContain('__inputs');
      expect(text, d.file).not.toMatch(/\$\{?DS_/);
      const j = JSON.parse(text) as { uid: string; id?: unknown; panels: { id: number; type: string; datasource?: { uid: string; type: string }; targets?: { datasource: { uid: string }; expr: string }[] }[] };
      expect(j.uid).toMatch(/^[a-z0-9-]{1,40}$/);
      expect(j.id, 'no numeric id: provisioning keys dashboards by uid').toBeUndefined();
      expect(uids.has(j.uid)).toBe(false);
      uids.add(j.uid);
      const ids = j.panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const p of j.panels.filter((x) => x.type !== 'row')) {
        expect(p.datasource).toEqual({ type: 'prometheus', uid: 'prometheus' });
        expect(p.targets?.length).toBeGreaterThan(0);
        for (const t of p.targets!) {
          expect(t.datasource.uid).toBe('prometheus');
          // Only the variables Grafana defines itself: the test substitutes them when it runs the queries.
          for (const v of t.expr.match(/\$\w+/g) ?? []) expect(['$__rate_interval', '$__range', '$__interval']).toContain(v);
        }
      }
    }
  });

  it('provisioning: the datasource uid the dashboards use, and the mounted dashboards path', () => {
    const ds = parse(readFileSync(path.join(ROOT, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { apiVersion: number; datasources: Record<string, unknown>[] };
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources).toHaveLength(1);
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', uid: 'prometheus', access: 'proxy', isDefault: true, editable: false });
    const prov = parse(readFileSync(path.join(ROOT, 'grafana/provisioning/dashboards/enclave.yaml'), 'utf8')) as { providers: Record<string, unknown>[] };
    expect(prov.providers[0]).toMatchObject({ type: 'file', allowUiUpdates: false, options: { path: '/var/lib/grafana/dashboards' } });
  });
});

describe('PromQL of dashboards and alert rules', () => {
  it('names only catalogued metrics (docs/metrics.md), prom-client defaults or up', () => {
    const known = catalogued();
    const queries = shippedQueries();
    expect(queries.length).toBeGreaterThan(50);
    for (const { where, expr } of queries) {
      const names = metricNames(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const n of names) {
        const fam = familyOf(n, known);
        expect(known.has(fam) || /^(process_|nodejs_)/.test(n) || n === 'up', `${where}: ${n}`).toBe(true);
      }
    }
  });

  it('the parser finds renamed metrics', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le, queue) (rate(enclave_queue_wait_seconds_bucket{queue!="x"}[$__rate_interval])))')).toEqual(['enclave_queue_wait_seconds_bucket']);
    expect(metricNames('time() - max(enclave_worker_heartbeat_timestamp_seconds) > 60 and on(job) up{job="a"}')).toEqual(['enclave_worker_heartbeat_timestamp_seconds', 'up']);
    expect(metricNames('sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.05 unless absent(c)')).toEqual(['a_total', 'b_total', 'c']);
  });

  it('promtool accepts the scrape config and the alert rules; every rule has a severity and a summary', () => {
    const promtool = 'promtool';
    promtoolCheckConfig(path.join(ROOT, 'compose/prometheus/prometheus.yml'), promtool);
    for (const f of readdirSync(RULES_DIR)) {
      execFileSync(promtool, ['check', 'rules', path.join(RULES_DIR, f)], { stdio: 'pipe' });
      const r = parse(readFileSync(path.join(RULES_DIR, f), 'utf8')) as { groups: { rules: { alert: string; labels: { severity: string }; annotations: { summary: string } }[] }[] };
      for (const g of r.groups) for (const rule of g.rules) {
        expect(['info', 'warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      }
    }
  });

  it('the alerts the observability issue asks for exist', () => {
    const alerts = shippedQueries().filter((q) => q.where.startsWith('enclave.yml')).map((q) => q.where.split(': ')[1]);
    for (const a of [
      'EnclaveProviderDown',
      'EnclaveGatewayErrorRatioHigh',
      'EnclaveGatewayOverheadP99High',
      'EnclaveUpstreamLatencyP99High',
      'EnclaveQueueBacklog',
      'EnclaveQueueOldestJobOld',
      'EnclaveWorkerHeartbeatStale',
      'EnclaveLicenceExpiringSoon',
      'EnclaveLicenceExpiringVerySoon',
      'EnclaveLicenceLapsed',
      'EnclaveBackupStale',
      'EnclaveBackupNeverVerified',
      'EnclaveTenantQuotaNearlyUsed',
      'EnclaveAuthFailureSpike',
      'EnclaveRateLimiterDegraded',
    ])
      expect(alerts).toContain(a);
  });
});
