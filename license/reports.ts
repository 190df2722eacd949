import { createHash } from 'node:crypto';
import { z } from 'zod';
import { b64uDecode, b64uEncode, strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { installationIdFor, verifyInstallationSignature, type Installation } from './installation.js';

/**
 * What an installation sends its vendor, signed by the installation key:
 * - an activation request (`enclave license request`): installation id and public key, version, counts;
 * - a usage export (`enclave license usage export`): hash-chained JSONL, the last line signs the chain.
 * The vendor verifies both offline (`enclave license usage verify`, verifyActivationRequest()).
 */
export interface ActivationRequestBody {
  readonly type: 'enclave-activation-request';
  readonly v: 1;
  readonly installation: { readonly id: string; readonly publicKey: string; readonly environment: string };
  readonly version: string;
  readonly createdAt: string;
  readonly usage: Record<string, unknown>;
  readonly licence?: { readonly lid: string; readonly seq: number; readonly customer: string };
}

export function activationRequest(inst: Installation, body: Omit<ActivationRequestBody, 'type' | 'v' | 'installation'> & { environment: string }): string {
  const { environment, ...rest } = body;
  const full: ActivationRequestBody = { type: 'enclave-activation-request', v: 1, installation: { id: inst.id, publicKey: inst.publicKey, environment }, ...rest };
  const bytes = Buffer.from(JSON.stringify(full));
  return JSON.stringify({ request: b64uEncode(bytes), signature: inst.sign(bytes) }, null, 2) + '\n';
}

export function verifyActivationRequest(text: string): ActivationRequestBody {
  let outer: { request?: unknown; signature?: unknown };
  try {
    outer = JSON.parse(text) as typeof outer;
  } catch {
    throw new LicenseError('malformed', 'the activation request is not JSON');
  }
  if (typeof outer.request !== 'string' || typeof outer.signature !== 'string') throw new LicenseError('malformed', 'the activation request lacks request or signature');
  const bytes = b64uDecode(outer.request, 'request');
  const body = strictJsonObject(bytes, 'request') as unknown as ActivationRequestBody;
  if (body.type !== 'enclave-activation-request' || !body.installation?.publicKey) throw new LicenseError('wrong_type', 'not an Enclave activation request');
  if (installationIdFor(body.installation.publicKey) !== body.installation.id) throw new LicenseError('bad_payload', 'the installation id does not match its public key');
  if (!verifyInstallationSignature(body.installation.publicKey, bytes, outer.signature)) throw new LicenseError('bad_signature', 'the activation request signature does not verify');
  return body;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const GENESIS = '0'.repeat(64);

/**
 * A usage export: one JSON object per line, each carrying `prev` (SHA-256 of the previous
 * line's exact text); the first line names the installation and its public key; the last
 * line signs the SHA-256 of the line before it with the installation key. Editing,
 * reordering, dropping or adding a line breaks the chain.
 */
export function usageExport(inst: Installation, header: Record<string, unknown>, records: readonly Record<string, unknown>[]): string {
  const lines: string[] = [];
  let prev = GENESIS;
  for (const rec of [{ type: 'header', v: 1, installation: inst.id, publicKey: inst.publicKey, ...header }, ...records]) {
    const line = JSON.stringify({ ...rec, prev });
    lines.push(line);
    prev = sha256(line);
  }
  lines.push(JSON.stringify({ type: 'signature', alg: 'EdDSA', chain: prev, sig: inst.sign(Buffer.from(prev)) }));
  return lines.join('\n') + '\n';
}

const sigLine = z.object({ type: z.literal('signature'), alg: z.literal('EdDSA'), chain: z.string(), sig: z.string() });

export function verifyUsageExport(text: string): { installation: string; header: Record<string, unknown>; records: Record<string, unknown>[] } {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines.length < 2) throw new LicenseError('malformed', 'the usage export is empty or truncated');
  let prev = GENESIS;
  const objs: Record<string, unknown>[] = [];
  for (const [i, line] of lines.slice(0, -1).entries()) {
    const o = strictJsonObject(Buffer.from(line), `line ${i + 1}`);
    if (o.prev !== prev) throw new LicenseError('bad_signature', `line ${i + 1} breaks the hash chain (edited, removed or reordered lines)`);
    objs.push(o);
    prev = sha256(line);
  }
  const sig = sigLine.safeParse(strictJsonObject(Buffer.from(lines.at(-1)!), 'signature line'));
  if (!sig.success) throw new LicenseError('malformed', 'the last line is not the signature line (truncated?)');
  if (sig.data.chain !== prev) throw new LicenseError('bad_signature', 'the signature line does not close the chain');
  const header = objs[0]!;
  if (header.type !== 'header' || typeof header.publicKey !== 'string' || typeof header.installation !== 'string') {
    throw new LicenseError('malformed', 'the first line is not the export header');
  }
  if (installationIdFor(header.publicKey) !== header.installation) throw new LicenseError('bad_payload', 'the installation id does not match its public key');
  if (!verifyInstallationSignature(header.publicKey, Buffer.from(prev), sig.data.sig)) {
    throw new LicenseError('bad_signature', 'the usage export signature does not verify with the installation key');
  }
  return { installation: header.installation, header, records: objs.slice(1) };
}
