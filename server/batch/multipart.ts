import type { Request } from 'express';
import { AppError } from '../errors.js';

/**
 * A small multipart/form-data reader for POST /v1/files (fields `purpose` and `file`), the
 * shape the openai SDK sends. The body is read up to `maxBytes` (413 beyond), then split on
 * the boundary. Only what the endpoint needs: no nested parts, no transfer encodings.
 */
export interface Part {
  readonly name: string;
  readonly filename?: string;
  readonly contentType?: string;
  readonly data: Buffer;
}

export async function readBody(req: Request, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      req.destroy();
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function tooLarge(maxBytes: number): AppError {
  return new AppError(413, 'file_too_large', `The upload is larger than the limit of ${maxBytes} bytes (ENCLAVE_BATCH_MAX_FILE_BYTES).`);
}

export function parseMultipart(contentType: string | undefined, body: Buffer): Part[] {
  const m = /^multipart\/form-data\s*;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  if (!m) throw new AppError(400, 'invalid_request', 'Send the file as multipart/form-data with fields "purpose" and "file".');
  const boundary = Buffer.from(`--${m[1] ?? m[2]}`);
  const parts: Part[] = [];
  let pos = body.indexOf(boundary);
  if (pos < 0) throw new AppError(400, 'invalid_request', 'The multipart body has no parts.');
  for (;;) {
    pos += boundary.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    if (body.subarray(pos, pos + 2).toString() === '\r\n') pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new AppError(400, 'invalid_request', 'A multipart part has no header end.');
    const headers = body.subarray(pos, headerEnd).toString('utf8');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), boundary]), headerEnd + 4);
    if (next < 0) throw new AppError(400, 'invalid_request', 'The multipart body is truncated (no closing boundary).');
    const disp = /content-disposition:\s*form-data\s*;([^\r\n]*)/i.exec(headers)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disp)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disp)?.[1];
    const ct = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim();
    if (name !== undefined) {
      parts.push({ name, ...(filename !== undefined ? { filename } : {}), ...(ct ? { contentType: ct } : {}), data: body.subarray(headerEnd + 4, next) });
    }
    pos = next + 2;
  }
  return parts;
}
