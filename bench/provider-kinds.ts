/**
 * Adapter CPU per call, per provider kind: each kind's adapter (request translation, the
 * HTTP exchange over server/providers/upstream-http.ts, answer or stream decoding) against
 * its wire-faithful fake in a child process (the fake's CPU is not counted). Sequential
 * calls in batches; reports this process's CPU per call, the minimum over batches (the
 * figure that stays comparable on a shared machine), and the median. For Anthropic it also
 * measures the same calls through the official @anthropic-ai/sdk, the alternative the
 * adapter was chosen against (issue 19: "direct HTTP or the SDK — measure").
 *
 *   node --import tsx bench/provider-kinds.ts [--batches 8] [--batch 400]
 *
 * bedrock, vertex and gemini run against their fakes too (the fake Bedrock checks every signature).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

type FakeName = 'openai' | 'anthropic' | 'azure' | 'bedrock' | 'vertex' | 'gemini';

if (process.env.BENCH_FAKE) {
  const name = process.env.BENCH_FAKE as FakeName;
  if (name === 'bedrock' || name === 'vertex' || name === 'gemini') {
    // Part B's kinds: the fake Bedrock (checks every SigV4 signature), the fake Vertex (token endpoint + API) and Gemini.
    const g =
      name === 'bedrock' ? new (await import('../test/fakes/fake-bedrock.js')).FakeBedrock() : new (await import('../test/fakes/fake-vertex.js')).FakeVertex(name);
    g.record = false;
    await g.start();
    const v = g as { serviceAccountJson?: () => string; apiKey?: string; project?: string; location?: string };
    process.send!({ url: g.url, ...(name === 'vertex' ? { serviceAccount: v.serviceAccountJson!(), project: v.project, location: v.location } : name === 'gemini' ? { apiKey: v.apiKey } : {}) });
    await new Promise(() => {});
  }
  const f =
    name === 'openai'
      ? new (await import('../test/fakes/fake-openai.js')).FakeOpenAI()
      : name === 'anthropic'
        ? new (await import('../test/fakes/fake-anthropic.js')).FakeAnthropic()
        : new (await import('../test/fakes/fake-azure-openai.js')).FakeAzureOpenAI();
  f.record = false;
  await f.start();
  process.send!({ url: f.url, ...(name === 'azure' ? { apiKey: (f as { apiKey: string }).apiKey, entra: (f as { entra: object }).entra } : {}) });
} else {
  const batches = arg('batches', 8);
  const batch = arg('batch', 400);
  const children: ReturnType<typeof fork>[] = [];
  const start = async (
    name: FakeName,
  ): Promise<{ url: string; apiKey?: string; entra?: { tenant: string; clientId: string; clientSecret: string }; serviceAccount?: string; project?: string; location?: string }> => {
    const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_FAKE: name }, execArgv: ['--import', 'tsx'] });
    children.push(child);
    return new Promise((r) => child.once('message', (m: any) => r(m)));
  };
  const { createAdapter } = await import('../server/providers/index.js');
  const Anthropic = (await import('@anthropic-ai/sdk')).default;
  const openai = await start('openai');
  const anthropic = await start('anthropic');
  const azure = await start('azure');
  const bedrock = await start('bedrock');
  const vertex = await start('vertex');
  const gemini = await start('gemini');

  const messages = [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Summarise the quarterly report for the board in three bullet points.' },
  ];
  type Call = (stream: boolean) => Promise<void>;
  const adapterCall = (kind: Parameters<typeof createAdapter>[0], cfg: Parameters<typeof createAdapter>[1], model: string): Call => {
    const a = createAdapter(kind, cfg);
    const body = { model, messages, max_tokens: 64 };
    return async (stream) => {
      const signal = new AbortController().signal;
      if (stream) for await (const _ of await a.chatStream(body, { signal })) void _;
      else await a.chat(body, { signal });
    };
  };
  const sdk = new Anthropic({ baseURL: anthropic.url, apiKey: 'bench', maxRetries: 0 });
  const sdkCall: Call = async (stream) => {
    const p = { model: 'claude-fake-1', max_tokens: 64, system: 'You are terse.', messages: [{ role: 'user' as const, content: messages[1]!.content }] };
    if (stream) for await (const _ of await sdk.messages.create({ ...p, stream: true })) void _;
    else await sdk.messages.create(p);
  };
  const e = azure.entra!;
  const KINDS: { name: string; call: Call }[] = [
    { name: 'openai (baseline)', call: adapterCall('openai', { baseUrl: `${openai.url}/v1`, apiKey: 'bench' }, 'gpt-fake') },
    { name: 'anthropic (direct HTTP)', call: adapterCall('anthropic', { baseUrl: anthropic.url, apiKey: 'bench' }, 'claude-fake-1') },
    { name: 'anthropic via @anthropic-ai/sdk', call: sdkCall },
    { name: 'azure-openai (api-key)', call: adapterCall('azure-openai', { baseUrl: azure.url, apiKey: azure.apiKey }, 'gpt4o-prod') },
    {
      name: 'azure-openai (Entra ID token)',
      call: adapterCall(
        'azure-openai',
        {
          baseUrl: azure.url,
          settings: { entra_tenant_id: e.tenant, entra_client_id: e.clientId, entra_token_url: `${azure.url}/${e.tenant}/oauth2/v2.0/token` },
          credentials: { entra_client_secret: e.clientSecret },
        },
        'gpt4o-prod',
      ),
    },
    {
      name: 'bedrock (SigV4, event-stream)',
      call: adapterCall('bedrock', { baseUrl: bedrock.url, region: 'us-east-1', credentials: { aws_access_key_id: 'AKIDFAKEBEDROCK', aws_secret_access_key: 'fake/secret+key' } }, 'amazon.nova-pro-v1:0'),
    },
    {
      name: 'vertex (service account, cached)',
      call: adapterCall('vertex', { baseUrl: vertex.url, region: vertex.location!, settings: { project: vertex.project! }, credentials: { service_account_json: vertex.serviceAccount! } }, 'gemini-2.5-flash'),
    },
    { name: 'gemini (API key)', call: adapterCall('gemini', { baseUrl: gemini.url, apiKey: gemini.apiKey }, 'gemini-2.5-flash') },
  ];
  const cpuPerCall = async (call: Call, stream: boolean, n: number): Promise<number> => {
    const c0 = process.cpuUsage();
    for (let j = 0; j < n; j++) await call(stream);
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / n;
  };
  console.log(`CPU per call (µs, this process), ${batches} batches × ${batch} sequential calls: min / median`);
  for (const stream of [false, true]) {
    for (const k of KINDS) {
      await cpuPerCall(k.call, stream, 200); // warm-up (JIT, pools, the Entra token)
      const xs: number[] = [];
      for (let b = 0; b < batches; b++) xs.push(await cpuPerCall(k.call, stream, batch));
      xs.sort((a, b) => a - b);
      console.log(`${stream ? 'stream' : 'unary '}  ${k.name.padEnd(32)} ${xs[0]!.toFixed(0).padStart(5)} / ${xs[Math.floor(xs.length / 2)]!.toFixed(0).padStart(5)}`);
    }
  }
  for (const c of children) c.kill();
}
