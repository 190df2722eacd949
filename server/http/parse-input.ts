import type { z } from 'zod';
import { AppError } from '../errors.js';

/**
 * Validates a request body or query with a zod schema; the first problem becomes a 400
 * `invalid_request` naming the field (`param`) so clients see what to fix. A missing body
 * validates as `{}`.
 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const param = issue?.path.join('.') || undefined;
    throw new AppError(400, 'invalid_request', `${param ? `${param}: ` : ''}${issue?.message ?? 'invalid request'}`, param ? { param } : {});
  }
  return r.data;
}
