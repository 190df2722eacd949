import { describe, expect, it } from 'vitest';
import { formatReset, monthById, monthWindow, parseLimits } from '../../server/metering/limits.js';
import { costOf } from '../../server/metering/prices.js';
import { MemoryStore, type AdmitInput, type LevelSpec } from '../../server/metering/store.js';

describe('calendar-month windows', () => {
  it('UTC', () => {
    expect(monthWindow(Date.UTC(2025, 0, 31, 23, 59, 59, 999))).toEqual({ id: '2025-01', start: Date.UTC(2025, 0, 1), end: Date.UTC(2025, 1, 1) });
    expect(monthWindow(Date.UTC(2025, 11, 31, 12)).end).toBe(Date.UTC(2026, 0, 1));
    expect(monthWindow(Date.UTC(2024, 1, 29)).id).toBe('2024-02');
  });
  it('a tenant time zone, across DST changes', () => {
    // New York is UTC-5 in winter, UTC-4 in summer
    expect(monthWindow(Date.UTC(2026, 2, 1, 3), 'America/New_York')).toMatchObject({ id: '2026-02', start: Date.UTC(2026, 1, 1, 5), end: Date.UTC(2026, 2, 1, 5) });
    expect(monthWindow(Date.UTC(2026, 2, 15), 'America/New_York')).toMatchObject({ id: '2026-03', start: Date.UTC(2026, 2, 1, 5), end: Date.UTC(2026, 3, 1, 4) });
    // Berlin: CET (+1) → CEST (+2) on the last Sunday of March
    expect(monthWindow(Date.UTC(2026, 3, 10), 'Europe/Berlin')).toMatchObject({ id: '2026-04', start: Date.UTC(2026, 2, 31, 22), end: Date.UTC(2026, 3, 30, 22) });
    expect(monthWindow(Date.UTC(2026, 2, 31, 21, 59), 'Europe/Berlin').id).toBe('2026-03');
    expect(monthWindow(Date.UTC(2026, 2, 31, 22, 0), 'Europe/Berlin').id).toBe('2026-04');
    // Tokyo (+9, no DST) and a half-hour zone
    expect(monthWindow(Date.UTC(2026, 0, 31, 15), 'Asia/Tokyo').id).toBe('2026-02');
    expect(monthById('2026-01', 'Asia/Kolkata').start).toBe(Date.UTC(2025, 11, 31, 18, 30));
    expect(() => monthById('2026-13')).toThrow();
  });
  it("formats resets the way OpenAI's headers do", () => {
    expect(formatReset(20)).toBe('20ms');
    expect(formatReset(1000)).toBe('1s');
    expect(formatReset(6180)).toBe('6.18s');
    expect(formatReset(360_000)).toBe('6m0s');
    expect(formatReset(3_723_000)).toBe('1h2m3s');
  });
  it('costs in integer micro-units', () => {
    expect(costOf({ inputMicrosPerMTok: 2_500_000, outputMicrosPerMTok: 10_000_000, requestMicros: 0 }, 1000, 500)).toBe(2500 + 5000);
    expect(costOf({ inputMicrosPerMTok: 150_000, outputMicrosPerMTok: 600_000, requestMicros: 7 }, 3, 6)).toBe(4 + 7); // 4.05 rounds to whole micro-units
    expect(Number.isInteger(costOf({ inputMicrosPerMTok: 333, outputMicrosPerMTok: 777, requestMicros: 0 }, 12345, 6789))).toBe(true);
  });
  it('ignores broken limit JSON', () => {
    expect(parseLimits('{"monthly_tokens": -1}')).toEqual({});
    expect(parseLimits('nope')).toEqual({});
    expect(parseLimits('{"monthly_tokens": 5}')).toEqual({ monthly_tokens: 5 });
  });
});

describe('the in-process counter store (fail-open) follows the same rules as the Lua script', () => {
  const lvl = (level: LevelSpec['level'], o: Partial<LevelSpec> = {}): LevelSpec => ({ level, id: level, rpm: -1, tpm: -1, conc: -1, mtok: -1, mcost: -1, ...o });
  const input = (levels: LevelSpec[], o: Partial<AdmitInput> = {}): AdmitInput => ({ now: 1_000_000, rid: Math.random().toString(36), tenantId: 't', est: 10, estCost: 0, monthId: 'm', monthEnd: 2_000_000, concurrencyTtlMs: 60_000, levels, ...o });

  it('seeds monthly counters first, then reserves and settles', () => {
    const s = new MemoryStore();
    const levels = [lvl('tenant', { mtok: 25 })];
    const first = s.admit(input(levels));
    expect(first).toEqual({ ok: 'seed', missing: [{ levelIdx: 0, kind: 'tokens' }] });
    s.seed(input(levels), [{ levelIdx: 0, kind: 'tokens', value: 3 }]);
    const a = s.admit(input(levels, { rid: 'a' }));
    expect(a.ok).toBe(true);
    expect(s.admit(input(levels, { rid: 'b' })).ok).toBe(true); // 3 + 10 + 10 = 23
    const c = s.admit(input(levels, { rid: 'c' }));
    expect(c).toMatchObject({ ok: false, limit: 'monthly_tokens', retryMs: 1_000_000 });
    s.settle({ now: 1_000_000, rid: 'a', tenantId: 't', monthId: 'm', levels, masks: (a as any).masks, est: 10, estCost: 0, actual: 2, actualCost: 0 });
    expect(s.admit(input(levels, { rid: 'd' })).ok).toBe(true); // 3 + 2 + 10 + 10 = 25
  });

  it('the refusal with the longest wait wins; token buckets refill continuously', () => {
    const s = new MemoryStore();
    const levels = [lvl('key', { rpm: 1 }), lvl('tenant', { rpm: 2 })];
    expect(s.admit(input(levels)).ok).toBe(true);
    expect(s.admit(input(levels))).toMatchObject({ ok: false, levelIdx: 0, limit: 'requests_per_minute', retryMs: 60_000 });
    expect(s.admit(input(levels, { now: 1_060_000 })).ok).toBe(true);
    const r = s.admit(input(levels, { now: 1_060_000 }));
    expect(r).toMatchObject({ ok: false, levelIdx: 0, retryMs: 60_000 }); // key waits 60 s, tenant only 30 s
  });

  it('concurrency slots are freed at settlement and expire on their own', () => {
    const s = new MemoryStore();
    const levels = [lvl('user', { conc: 1 })];
    expect(s.admit(input(levels, { rid: 'x' })).ok).toBe(true);
    expect(s.admit(input(levels, { rid: 'y' }))).toMatchObject({ ok: false, limit: 'concurrent_requests' });
    expect(s.admit(input(levels, { rid: 'z', now: 1_060_001 })).ok).toBe(true); // x expired
    s.settle({ now: 1_060_001, rid: 'z', tenantId: 't', monthId: 'm', levels, masks: [0], est: 10, estCost: 0, actual: 10, actualCost: 0 });
    expect(s.admit(input(levels, { rid: 'w', now: 1_060_001 })).ok).toBe(true);
  });
});
