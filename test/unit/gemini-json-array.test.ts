import { describe, expect, it } from 'vitest';
import { readJsonArray } from '../../server/providers/vertex/json-array.js';

/** Google's default streamGenerateContent framing: a JSON array written element by element. */
async function* pieces(text: string, at: number[]): AsyncGenerator<Buffer> {
  const b = Buffer.from(text);
  let from = 0;
  for (const i of [...at, b.length]) {
    yield b.subarray(from, i);
    from = i;
  }
}
async function all(text: string, at: number[] = []): Promise<unknown[]> {
  const out = [];
  for await (const v of readJsonArray(pieces(text, at))) out.push(v);
  return out;
}

describe('readJsonArray', () => {
  const text = '[{"a":"x]}\\"{","n":[1,{"b":2}]}\r\n,\r\n{"c":"é"}\r\n]';
  it('yields each element as it completes, split at every byte (brackets and quotes inside strings, UTF-8 split)', async () => {
    for (let i = 1; i < Buffer.byteLength(text); i++) expect(await all(text, [i]), `split at ${i}`).toEqual([{ a: 'x]}"{', n: [1, { b: 2 }] }, { c: 'é' }]);
  });
  it('an empty array yields nothing', async () => {
    expect(await all(' [ ] ')).toEqual([]);
  });
  it.each([
    ['{"a":1}', /does not start with/],
    ['[{"a":1}', /closing bracket/],
    ['[{"a":1}] x', /after the closing bracket/],
    ['[1,2]', /not an object or array/],
    ['[{"a":}]', /JSON/],
  ])('%s is a SyntaxError', async (bad, why) => {
    await expect(all(bad)).rejects.toThrow(why);
    await expect(all(bad)).rejects.toBeInstanceOf(SyntaxError);
  });
  it('yields the first element before the rest arrives', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* src(): AsyncGenerator<string> {
      yield '[{"a":1},';
      await gate;
      yield '{"b":2}]';
    }
    const it = readJsonArray(src());
    expect((await it.next()).value).toEqual({ a: 1 });
    release();
    expect((await it.next()).value).toEqual({ b: 2 });
    expect((await it.next()).done).toBe(true);
  });
});
