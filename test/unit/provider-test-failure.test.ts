import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../server/providers/index.js';
import { testFailure } from '../../server/routing/deployments.js';

/**
 * `enclave providers test` / the console's Test button name the cause of a failure in an
 * administrator's terms (issue 19: wrong key, wrong region, model not enabled), never a secret.
 * The model-access texts are the ones each provider sends (and our fakes replay).
 */
const url = 'https://bedrock-runtime.eu-central-1.amazonaws.com';
const notEnabled = /the model is not enabled for this account, project or resource/;

describe('providers test: the cause of a failure', () => {
  it.each([
    ['Bedrock AccessDeniedException', new UpstreamError('provider_auth_failed', "Bedrock 403 AccessDeniedException: You don't have access to the model with the specified model ID.", 403)],
    ['Vertex 404', new UpstreamError('provider_model_not_found', 'Vertex 404: Publisher Model `projects/p/locations/europe-west4/publishers/google/models/gemini-x` was not found or your project does not have access to it.', 404)],
    ['OpenAI model_not_found', new UpstreamError('provider_model_not_found', 'upstream 404', 404, undefined, 'The model `gpt-x` does not exist or you do not have access to it.')],
    ['Azure DeploymentNotFound', new UpstreamError('provider_model_not_found', 'Azure 404 DeploymentNotFound: The API deployment for this resource does not exist.', 404)],
    ['Gemini 404', new UpstreamError('provider_model_not_found', 'Gemini 404: models/gemini-x is not found for API version v1beta, or is not supported for generateContent.', 404)],
    ['Anthropic not_found_error', new UpstreamError('provider_model_not_found', 'Anthropic 404 not_found_error: model: claude-x', 404)],
  ])('%s: the model is not enabled', (_name, e) => {
    const r = testFailure(e, url, []);
    expect(r.error).toMatch(notEnabled);
    expect(r.error_code).toBe(e.code);
  });

  it('a refused key is about the credentials, an unknown host about the endpoint; secrets never appear', () => {
    const auth = testFailure(new UpstreamError('provider_auth_failed', 'Bedrock 403 UnrecognizedClientException: The security token included in the request is invalid. AKIDEXAMPLE', 403), url, ['AKIDEXAMPLE']);
    expect(auth.error).toMatch(/refused the credentials/);
    expect(auth.error).not.toMatch(notEnabled);
    expect(auth.error).not.toContain('AKIDEXAMPLE');
    const host = testFailure(new UpstreamError('provider_model_not_found', 'upstream 404: Not Found', 404), url, []);
    expect(host.error).toMatch(/does not know this resource/);
    const down = testFailure(new UpstreamError('provider_connection_error', 'connect ECONNREFUSED', undefined), url, []);
    expect(down.error).toMatch(/bedrock-runtime\.eu-central-1\.amazonaws\.com could not be reached/);
  });
});
