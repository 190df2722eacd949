/**
 * Cost of one provider call through the openai adapter over server/providers/upstream-http.ts
 * (what the gateway pays per upstream call), against the fake OpenAI upstream in a child
 * process: wall time and this process's CPU per call, sequential, after warm-up.
 *
 *   node --import tsx bench/provider-call.ts [--n 5000]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (process.env.BENCH_ROLE === 'fake') {
  const { FakeOpenAI } = await import('../test/fakes/fake-openai.js');
  const f = new FakeOpenAI();
  f.record = false;
  await f.start();
  process.send!({ url: f.url });
} else {
  const i = process.argv.indexOf('--n');
  const n = i > 0 ? Number(process.argv[i + 1]) : 5000;
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_ROLE: 'fake' }, execArgv: ['--import', 'tsx'] });
  const url: string = await new Promise((r) => child.once('message', (m: any) => r(m.url)));
  const { OpenAIAdapter } = await import('../server/providers/openai/adapter.js');
  const a = new OpenAIAdapter({ baseUrl: `${url}/v1` } as any);
  const body = { model: 'gpt-fake', messages: [{ role: 'user' as const, content: 'Summarise the quarterly report for the board in three bullet points.' }], max_tokens: 64 };
  const run = async (k: number, stream: boolean): Promise<{ wall: number; cpu: number }> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let j = 0; j < k; j++) {
      const ac = new AbortController();
      if (stream) for await (const _ of await a.chatStream(body as any, { signal: ac.signal })) void _;
      else await a.chat(body as any, { signal: ac.signal });
    }
    const c = process.cpuUsage(c0);
    return { wall: ((performance.now() - t0) / k) * 1000, cpu: (c.user + c.system) / k };
  };
  for (const stream of [false, true]) {
    await run(1000, stream);
    const r = await run(n, stream);
    console.log(`${stream ? 'stream' : 'unary '} provider call: ${r.wall.toFixed(0)} µs wall, ${r.cpu.toFixed(0)} µs CPU (client side) per call`);
  }
  child.kill();
}
