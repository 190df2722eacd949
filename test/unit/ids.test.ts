import { describe, expect, it } from 'vitest';
import { isId, newId } from '../../server/ids.js';

describe('ids', () => {
  it('are prefixed, well-formed and sort by creation time', () => {
    const a = newId('ten', 1_700_000_000_000);
    const b = newId('ten', 1_700_000_000_001);
    expect(isId('ten', a)).toBe(true);
    expect(isId('usr', a)).toBe(false);
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 1000 }, () => newId('req'))).size).toBe(1000);
  });
});
