import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/load.js';
import { egressPolicy, parseNetworks, refusedBaseUrl } from '../../server/providers/egress.js';
import { OllamaAdapter } from '../../server/providers/ollama/adapter.js';
import { OpenAIAdapter } from '../../server/providers/openai/adapter.js';
import { UpstreamError } from '../../server/providers/types.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { FakeOllama } from '../fakes/fake-ollama.js';

describe('egress rule for tenant-private deployments', () => {
  const dflt = egressPolicy(undefined);

  it('by default refuses loopback, link-local, unspecified and multicast (v4, v6 and v4-mapped v6) and allows the rest', () => {
    for (const ip of ['127.0.0.1', '127.9.8.7', '0.0.0.0', '169.254.169.254', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:a9fe:a9fe']) {
      expect(dflt.refusal(ip), ip).toMatch(/tenant-private deployments may not reach .*ENCLAVE_TENANT_PROVIDER_NETWORKS/);
    }
    for (const ip of ['10.1.2.3', '172.16.0.9', '192.168.1.10', '8.8.8.8', 'fd00::5', '2001:db8::1', '::ffff:10.0.0.1']) expect(dflt.refusal(ip), ip).toBeNull();
  });

  it('with networks set, allows only addresses inside them (loopback too, when listed)', () => {
    const p = egressPolicy(' 10.20.0.0/16, 127.0.0.1 ,fd00::/8');
    for (const ip of ['10.20.3.4', '127.0.0.1', '::ffff:127.0.0.1', 'fd12::1']) expect(p.refusal(ip), ip).toBeNull();
    for (const ip of ['10.21.0.1', '127.0.0.2', '192.168.1.1', '169.254.169.254', '::1', '2001:db8::1']) expect(p.refusal(ip), ip).toMatch(/outside ENCLAVE_TENANT_PROVIDER_NETWORKS/);
  });

  it('parses networks and names the bad entry', () => {
    expect(parseNetworks('10.0.0.0/8,::1')).toEqual([
      { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { address: '::1', prefix: 128, family: 'ipv6' },
    ]);
    expect(() => parseNetworks('10.0.0.0/33')).toThrow(/"10.0.0.0\/33" has a bad prefix length/);
    expect(() => parseNetworks('10.0.0.0/8x')).toThrow(/bad prefix length/);
    expect(() => parseNetworks('intranet')).toThrow(/"intranet" is not an IP address/);
    expect(() => loadConfig({ ENCLAVE_TENANT_PROVIDER_NETWORKS: '10.0.0.0/8, nope' })).toThrow(/ENCLAVE_TENANT_PROVIDER_NETWORKS/);
  });

  it('a base URL with a refused IP literal or localhost is refused when it is set; other names wait for the connection', () => {
    for (const u of ['http://127.0.0.1:11434', 'http://[::1]:8000/v1', 'http://[::ffff:127.0.0.1]/v1', 'http://localhost:11434', 'http://LOCALHOST./v1', 'http://metadata.localhost/', 'http://169.254.169.254/latest']) {
      expect(refusedBaseUrl(dflt, u), u).not.toBeNull();
    }
    for (const u of ['http://10.0.0.5:11434', 'https://models.internal.example/v1', 'not a url']) expect(refusedBaseUrl(dflt, u), u).toBeNull();
  });

  it('adapters under the rule refuse at connect time, for IP literals and for names that resolve to a refused address; nothing reaches the upstream', async () => {
    const openai = await new FakeOpenAI().start();
    const ollama = await new FakeOllama().start();
    try {
      const port = (u: string) => new URL(u).port;
      const adapters = [
        new OpenAIAdapter({ baseUrl: `http://127.0.0.1:${port(openai.url)}/v1`, egress: dflt }),
        new OpenAIAdapter({ baseUrl: `http://localhost:${port(openai.url)}/v1`, egress: dflt }),
        new OllamaAdapter({ baseUrl: `http://127.0.0.1:${port(ollama.url)}`, egress: dflt }),
        new OllamaAdapter({ baseUrl: `http://localhost:${port(ollama.url)}`, egress: dflt }),
      ];
      for (const a of adapters) {
        const e = await a.chat({ model: 'm', messages: [{ role: 'user', content: 'hi' }] } as never, { signal: new AbortController().signal } as never).catch((x: unknown) => x);
        expect(e, a.kind).toBeInstanceOf(UpstreamError);
        expect((e as UpstreamError).code).toBe('provider_connection_error');
        expect((e as Error).message).toMatch(/refused to connect to (127\.0\.0\.1|localhost): .*loopback/);
        await expect(a.listModels({ signal: AbortSignal.timeout(2000) })).rejects.toThrow(/refused to connect/);
      }
      expect(openai.requests).toHaveLength(0);
      expect(ollama.requests).toHaveLength(0);
      // The control: the same adapters under a rule that lists loopback do reach it.
      const allowed = egressPolicy('127.0.0.0/8');
      expect(await new OpenAIAdapter({ baseUrl: `http://localhost:${port(openai.url)}/v1`, egress: allowed }).listModels({ signal: AbortSignal.timeout(2000) })).not.toHaveLength(0);
      expect(await new OllamaAdapter({ baseUrl: `http://127.0.0.1:${port(ollama.url)}`, egress: allowed }).listModels({ signal: AbortSignal.timeout(2000) })).not.toHaveLength(0);
      expect(openai.requests.length + ollama.requests.length).toBe(2);
    } finally {
      await openai.close();
      await ollama.close();
    }
  });
});
