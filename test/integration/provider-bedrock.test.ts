import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BedrockAdapter } from '../../server/providers/bedrock/adapter.js';
import { egressPolicy } from '../../server/providers/egress.js';
import { UpstreamError } from '../../server/providers/types.js';
import { FakeBedrock, FakeImds } from '../fakes/fake-bedrock.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * AWS Bedrock end to end: the official openai SDK → the gateway → the bedrock adapter →
 * the fake Bedrock, which verifies every request's SigV4 signature over the bytes it
 * received. The conformance table of the other kinds (plain, stream, tools, images, 429,
 * 5xx, slow first token, stall, drop, malformed frames, auth failure), plus what is
 * Bedrock's own: the event-stream CRCs, the credential chain (IMDSv2 only when enabled,
 * never for a tenant-private deployment), the region in the signature.
 */
let env: GatewayEnv;
let fake: FakeBedrock;
let imds: FakeImds;
let n = 0;
const KEYS = { aws_access_key_id: 'AKIDFAKEBEDROCK', aws_secret_access_key: 'fake/secret+key' };

beforeAll(async () => {
  env = await gatewayEnv();
  fake = await new FakeBedrock().start();
  imds = await new FakeImds().start();
});
afterAll(async () => {
  await env?.close();
  await fake?.close();
  await imds?.close();
});
afterEach(() => fake.assertNoPendingFaults());

/** A fresh deployment serving a fresh model id (with the `:` real Bedrock ids have). */
async function setup(o: { options?: Record<string, unknown>; credentials?: Record<string, string> | undefined; settings?: Record<string, unknown>; region?: string } = {}): Promise<{ model: string; name: string }> {
  const i = ++n;
  const model = `anthropic.claude-test-${i}-v1:0`;
  const name = `bedrock-${i}`;
  fake.reset();
  fake.models.push(model);
  // Awaited: the deployment service may answer asynchronously (issue 22's async data layer).
  await env.addProvider({
    name,
    kind: 'bedrock',
    base_url: fake.url,
    region: o.region ?? 'us-east-1',
    boundary: 'public',
    models: [model],
    ...('credentials' in o ? (o.credentials ? { credentials: o.credentials } : {}) : { credentials: KEYS }),
    ...(o.settings ? { settings: o.settings } : {}),
    options: { maxRetries: 0, ...o.options },
  });
  return { model, name };
}
const ask = (model: string, extra: Record<string, unknown> = {}) =>
  env.client.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }], ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
async function streamText(model: string): Promise<{ text: string; usage: OpenAI.CompletionUsage | null | undefined; err: unknown }> {
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  const err = await (async () => {
    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], stream: true, stream_options: { include_usage: true } });
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
  })().catch((x: unknown) => x);
  return { text, usage, err };
}
const TOOLS = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('bedrock through the gateway (openai SDK client)', () => {
  it('plain: a Converse call, signed and verified, with system prompt, usage and the model id’s colon encoded', async () => {
    const { model } = await setup();
    const r = await ask(model, { max_tokens: 100, temperature: 0.2 });
    expect(r.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
    expect(fake.verified).toBe(1);
    expect(fake.refused).toBe(0);
    const seen = fake.requests[0]!;
    expect(seen.path).toBe(`/model/${encodeURIComponent(model)}/converse`);
    expect(seen.body).toMatchObject({ system: [{ text: 'Be brief.' }], messages: [{ role: 'user', content: [{ text: 'hello there' }] }], inferenceConfig: { maxTokens: 100, temperature: 0.2 } });
    expect(String(seen.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$/);
  });

  it('stream: ConverseStream event-stream frames become chunks, with the usage chunk last', async () => {
    const { model } = await setup();
    const { text, usage, err } = await streamText(model);
    expect(err).toBeUndefined();
    expect(text).toBe('Hello from the fake model.');
    expect(usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
    expect(fake.requests[0]!.path).toMatch(/\/converse-stream$/);
  });

  it('tools: toolUse ↔ tool_calls, plain and streamed, and the tool result goes back as a toolResult block', async () => {
    const { model } = await setup();
    const r = await ask(model, { tools: TOOLS, tool_choice: 'required' });
    const call = r.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call).toMatchObject({ id: 'tooluse_fake1', type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
    expect(fake.requests[0]!.body.toolConfig).toEqual({ tools: [{ toolSpec: { name: 'get_weather', description: 'Weather of a city', inputSchema: { json: TOOLS[0]!.function.parameters } } }], toolChoice: { any: {} } });

    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS, stream: true });
    let args = '';
    let finish: string | null | undefined;
    for await (const c of s) {
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) args += tc.function?.arguments ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(JSON.parse(args)).toEqual({ city: 'Paris' });
    expect(finish).toBe('tool_calls');

    const r2 = await env.client.chat.completions.create({
      model,
      tools: TOOLS,
      messages: [{ role: 'user', content: 'weather?' }, r.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: '{"temp":21}' }],
    });
    expect(r2.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(fake.requests.at(-1)!.body.messages).toEqual([
      { role: 'user', content: [{ text: 'weather?' }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_fake1', name: 'get_weather', input: { city: 'Paris' } } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_fake1', content: [{ text: '{"temp":21}' }] } }] },
    ]);
  });

  it('images: a data-URL image becomes an image block; a link is refused with a clear 400 and nothing is sent', async () => {
    const { model } = await setup();
    await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    expect(fake.requests[0]!.body.messages[0].content).toEqual([{ text: 'what is this?' }, { image: { format: 'png', source: { bytes: PNG } } }]);
    const e = await env.client.chat.completions
      .create({ model, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] })
      .catch((x: unknown) => x as InstanceType<typeof OpenAI.APIError>);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as InstanceType<typeof OpenAI.APIError>).message).toMatch(/data: URLs/);
    expect(fake.requests.length).toBe(1);
  });

  it('embeddings: Titan through InvokeModel, one signed request per input, token counts summed; other families refused', async () => {
    const i = ++n;
    fake.reset();
    await env.addProvider({
      name: `bedrock-emb-${i}`,
      kind: 'bedrock',
      base_url: fake.url,
      region: 'us-east-1',
      boundary: 'public',
      models: [
        { name: `titan-${i}`, upstream: 'amazon.titan-embed-text-v2:0', type: 'embedding' },
        { name: `cohere-${i}`, upstream: 'cohere.embed-english-v3', type: 'embedding' },
      ],
      credentials: KEYS,
      options: { maxRetries: 0 },
    });
    const r = await env.client.embeddings.create({ model: `titan-${i}`, input: ['one two', 'three'], dimensions: 4 });
    expect(r.data.map((d) => d.embedding.length)).toEqual([4, 4]);
    expect(r.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    expect(fake.verified).toBe(2);
    expect(fake.requests.map((q) => q.body)).toEqual(expect.arrayContaining([{ inputText: 'one two', dimensions: 4 }, { inputText: 'three', dimensions: 4 }]));
    const e = (await env.client.embeddings.create({ model: `cohere-${i}`, input: 'x' }).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/Titan/);
  });

  it('429 ThrottlingException is retried; when it persists the client gets 429 provider_rate_limited', async () => {
    const { model } = await setup({ options: { maxRetries: 1 } });
    fake.fail('rate_limit');
    expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(fake.requests.length).toBe(2);
    fake.fail('rate_limit', 'rate_limit');
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(429);
    expect(e.code).toBe('provider_rate_limited');
  });

  it('5xx InternalServerException is retried, then a 502', async () => {
    const { model } = await setup({ options: { maxRetries: 1 } });
    fake.fail('server_error');
    expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    fake.fail('server_error', 'server_error');
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_server_error');
  });

  it('a slow first token times out (504)', async () => {
    const { model } = await setup({ options: { firstTokenMs: 150 } });
    fake.fail({ mode: 'slow_first_token', delayMs: 600 });
    const { err } = await streamText(model);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('provider_timeout');
  });

  it('a connection dropped before the answer is retried', async () => {
    const { model } = await setup({ options: { maxRetries: 1 } });
    fake.fail('drop');
    expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(fake.requests.length).toBe(2);
  });

  it.each(['stall_mid_stream', 'drop_mid_stream', 'error_mid_stream', 'malformed'] as const)('%s: the stream ends in an error after what arrived (a frame with a bad CRC is not relayed)', async (mode) => {
    const { model } = await setup({ options: { idleMs: 150 } });
    fake.fail(mode);
    const { text, err } = await streamText(model);
    expect(err, mode).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toMatch(mode === 'stall_mid_stream' ? /^provider_(stream_error|timeout)$/ : /^provider_stream_error$/);
    expect(text).toBe('Hello');
  });

  it('malformed JSON in a plain answer is a 502 provider_bad_response', async () => {
    const { model } = await setup();
    fake.fail('malformed');
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_bad_response');
  });

  it('a model the account cannot use is a 400 with AWS’s reason', async () => {
    const { model } = await setup();
    fake.models.splice(fake.models.indexOf(model), 1);
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/model identifier is invalid/);
  });

  it('auth failure: a wrong secret fails the fake’s signature check (InvalidSignatureException) → 502 provider_auth_failed; providers test says so without the secret', async () => {
    const { model, name } = await setup({ credentials: { aws_access_key_id: 'AKIDFAKEBEDROCK', aws_secret_access_key: 'not-the-secret-9f3a' } });
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_auth_failed');
    expect(fake.refused).toBe(1);
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.ok).toBe(false);
    expect(t.error).toMatch(/InvalidSignatureException|credentials/);
    expect(JSON.stringify(t)).not.toContain('not-the-secret-9f3a');
    // An unknown key id: UnrecognizedClientException, the same class of failure.
    const other = await setup({ credentials: { aws_access_key_id: 'AKIDUNKNOWN', aws_secret_access_key: 'x' } });
    expect(((await ask(other.model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>).code).toBe('provider_auth_failed');
  });

  it('AWS’s signature error quotes the canonical request (session token included): only its first paragraph is kept', async () => {
    fake.keys.set('ASIALEAK', { secret: 'right/secret', token: 'SESSIONTOKEN-must-not-leak' });
    const { model, name } = await setup({ credentials: { aws_access_key_id: 'ASIALEAK', aws_secret_access_key: 'wrong/secret', aws_session_token: 'SESSIONTOKEN-must-not-leak' } });
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.code).toBe('provider_auth_failed');
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.error).toMatch(/signature we calculated does not match/);
    expect(JSON.stringify(t)).not.toMatch(/Canonical String|SESSIONTOKEN/);
    const a = new BedrockAdapter({ baseUrl: fake.url, region: 'us-east-1', credentials: { aws_access_key_id: 'ASIALEAK', aws_secret_access_key: 'wrong/secret', aws_session_token: 'SESSIONTOKEN-must-not-leak' } });
    const direct = (await a.listModels({ signal: new AbortController().signal }).catch((x: unknown) => x)) as UpstreamError;
    expect(direct.code).toBe('provider_auth_failed');
    expect(direct.message).not.toMatch(/Canonical String|SESSIONTOKEN/); // the text that reaches the log
  });

  it('a region other than the one the credentials are scoped to is refused by the fake (the region is in the signature)', async () => {
    const { model } = await setup({ region: 'eu-west-1' });
    const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
    expect(e.code).toBe('provider_auth_failed');
    expect(fake.refused).toBe(1);
  });

  it('the deployment’s region feeds the data-boundary policy: a region outside the tenant’s allowed ones is refused before anything is sent', async () => {
    const { model } = await setup();
    const policies = env.app.services.gateway.policies;
    await policies.write(await env.tenant.ctx, { regions: { public: ['eu-central-1'], internal: ['eu-central-1'] } }, Date.now());
    try {
      const e = (await ask(model).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
      expect(e.status).toBe(403);
      expect(String(e.code)).toMatch(/^policy_/);
      expect(fake.requests.length).toBe(0);
      await policies.write(await env.tenant.ctx, { regions: { public: ['us-east-1'], internal: ['us-east-1'] } }, Date.now());
      expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    } finally {
      await policies.write(await env.tenant.ctx, {}, Date.now());
    }
  });

  it('providers test lists the foundation models (ListFoundationModels, signed)', async () => {
    const { name, model } = await setup();
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.ok).toBe(true);
    expect(t.models).toContain(model);
  });

  it('the container role through IMDSv2 when use_instance_role is on: temporary credentials with their session token, fetched once', async () => {
    const saved = { ep: process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT, id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    try {
      fake.keys.set('ASIAFAKEROLE', { secret: 'role/secret', token: 'role-session-token' });
      const { model } = await setup({ credentials: undefined, settings: { use_instance_role: true } });
      expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
      expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
      expect(fake.requests[0]!.headers['x-amz-security-token']).toBe('role-session-token');
      expect(String(fake.requests[0]!.headers.authorization)).toContain('Credential=ASIAFAKEROLE/');
      expect(String(fake.requests[0]!.headers.authorization)).toContain('x-amz-security-token');
      expect(imds.served).toBe(1); // cached until shortly before it expires
    } finally {
      for (const [k, v] of [['AWS_EC2_METADATA_SERVICE_ENDPOINT', saved.ep], ['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  // Promise.resolve().then(…): a refusal thrown or rejected (the deployment service may answer asynchronously).
  it('without keys and without use_instance_role the deployment is refused at creation', async () => {
    await expect(Promise.resolve().then(() => env.addProvider({ name: 'bedrock-nokeys', kind: 'bedrock', region: 'us-east-1', boundary: 'public', models: ['x'] }))).rejects.toThrow(/credentials are required/);
  });

  it('a region that is not an AWS region name is refused: it would become the host the prompts go to', async () => {
    for (const region of ['evil.example#', 'attacker.example/x', 'us-east-1.evil.example']) {
      await expect(Promise.resolve().then(() => env.addProvider({ name: `bedrock-r${++n}`, kind: 'bedrock', region, boundary: 'public', models: ['x'], credentials: KEYS })), region).rejects.toThrow(/AWS region/);
    }
  });
});

describe('bedrock adapter', () => {
  it('a tenant-private deployment never borrows the appliance’s role or environment', async () => {
    const a = new BedrockAdapter({ baseUrl: fake.url, region: 'us-east-1', settings: { use_instance_role: true }, egress: egressPolicy(undefined) });
    const e = await a.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { signal: new AbortController().signal }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UpstreamError);
    expect((e as UpstreamError).code).toBe('provider_auth_failed');
    expect((e as UpstreamError).message).toMatch(/tenant-private/);
  });

  it('an unreachable metadata service is a clear auth failure, and nothing is sent to Bedrock', async () => {
    const closed = await new FakeImds().start();
    const url = closed.url;
    await closed.close();
    const saved = { ep: process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT, id: process.env.AWS_ACCESS_KEY_ID };
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = url;
    delete process.env.AWS_ACCESS_KEY_ID;
    let a: BedrockAdapter;
    try {
      a = new BedrockAdapter({ baseUrl: fake.url, region: 'us-east-1', settings: { use_instance_role: true } });
    } finally {
      if (saved.ep === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved.ep;
      if (saved.id !== undefined) process.env.AWS_ACCESS_KEY_ID = saved.id;
    }
    fake.reset();
    const e = (await a.chat({ model: fake.models[0]!, messages: [{ role: 'user', content: 'x' }] }, { signal: new AbortController().signal }).catch((x: unknown) => x)) as UpstreamError;
    expect(e.code).toBe('provider_auth_failed');
    expect(e.message).toMatch(/instance metadata service/);
    expect(fake.requests.length).toBe(0);
  });

  it('a session token from the deployment is sent and signed', async () => {
    fake.reset();
    fake.keys.set('ASIATEMP', { secret: 'temp/secret', token: 'temp-token' });
    const a = new BedrockAdapter({ baseUrl: fake.url, region: 'us-east-1', credentials: { aws_access_key_id: 'ASIATEMP', aws_secret_access_key: 'temp/secret', aws_session_token: 'temp-token' } });
    expect(await a.listModels({ signal: new AbortController().signal })).toContain(fake.models[0]);
    expect(fake.verified).toBe(1);
  });
});
