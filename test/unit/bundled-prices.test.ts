import { describe, expect, it } from 'vitest';
import { BUNDLED_PRICES } from '../../server/metering/prices.js';

describe('bundled default prices', () => {
  it('one row per model name (a duplicate would make the first start insert two versions of one price)', () => {
    const names = BUNDLED_PRICES.map((p) => p.model);
    expect(names.length - new Set(names).size).toBe(0);
  });

  it('price the Bedrock (model ids and inference profiles) and Gemini models of issue 19, in micro-USD per million tokens', () => {
    const of = (m: string) => BUNDLED_PRICES.find((p) => p.model === m);
    expect(of('anthropic.claude-sonnet-4-20250514-v1:0')).toEqual({ model: 'anthropic.claude-sonnet-4-20250514-v1:0', input: 3_000_000, output: 15_000_000 });
    expect(of('us.anthropic.claude-sonnet-4-20250514-v1:0')).toMatchObject({ input: 3_000_000 });
    expect(of('eu.amazon.nova-pro-v1:0')).toMatchObject({ input: 800_000, output: 3_200_000 });
    expect(of('amazon.nova-micro-v1:0')).toMatchObject({ input: 35_000, output: 140_000 });
    expect(of('gemini-2.5-flash')).toMatchObject({ input: 300_000, output: 2_500_000 });
    expect(of('gemini-2.5-pro')).toMatchObject({ input: 1_250_000, output: 10_000_000 });
    expect(of('gemini-2.0-flash-lite-001')).toMatchObject({ input: 75_000, output: 300_000 });
  });
});
