import { bigint, customType } from 'drizzle-orm/pg-core';

/**
 * Column types that give PostgreSQL native types while keeping the TypeScript row types of
 * the SQLite schema (server/db/schema.ts), so one service can run on either dialect:
 *
 * - epochMs: `timestamptz(3)` in the database, a number of milliseconds since the epoch in
 *   TypeScript (SQLite stores the same number as an integer). Millisecond precision: exactly
 *   what SQLite holds, so a copied row compares equal.
 * - jsonText: `jsonb` in the database (queryable, validated), the JSON text in TypeScript (the
 *   services parse it themselves today). jsonb normalises the text (key order, spacing), so
 *   it is only for values whose bytes do not matter.
 * - jsonExact: `json` in the database: validated, but the text is kept byte for byte — for
 *   JSON whose bytes matter (audit details are hashed into the chain; batch response bodies
 *   are written to output files as received).
 * - counter: `bigint` read as a number, for counters that can pass 2^31 (tokens, cost in
 *   micro-units, bytes); exact up to 2^53.
 *
 * The pool (server/db/pg/connection.ts) hands json/jsonb over as text (no JSON.parse); the
 * mappers still accept a parsed value, so a differently configured client reads the same.
 */
export const epochMs = customType<{ data: number; driverData: Date | string }>({
  dataType: () => 'timestamp (3) with time zone',
  toDriver: (value) => new Date(value).toISOString(),
  fromDriver: (value) => (value instanceof Date ? value.getTime() : parseTimestamptz(value)),
});

/** PostgreSQL's ISO text form of a timestamptz (DateStyle ISO, the default), e.g. `2026-12-03 19:07:01.234+05:30`, any session time zone. */
const ISO_TZ = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$/;

/** drizzle hands timestamptz over as PostgreSQL's text (it turns pg's Date parsing off): parsed exactly here, not by Date's lenient parser. */
export function parseTimestamptz(text: string): number {
  const m = ISO_TZ.exec(text);
  if (!m) throw new Error(`unexpected timestamptz text from PostgreSQL: ${JSON.stringify(text)} (is DateStyle ISO?)`);
  const [, y, mo, d, h, mi, s, frac, sign, oh, om, os] = m;
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Math.round(Number(`0.${frac ?? '0'}`) * 1000));
  const offset = (Number(oh) * 3600 + Number(om ?? 0) * 60 + Number(os ?? 0)) * 1000;
  return sign === '+' ? local - offset : local + offset;
}

function jsonFromDriver(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export const jsonText = customType<{ data: string; driverData: unknown }>({
  dataType: () => 'jsonb',
  toDriver: (value) => value,
  fromDriver: jsonFromDriver,
});

export const jsonExact = customType<{ data: string; driverData: unknown }>({
  dataType: () => 'json',
  toDriver: (value) => value,
  fromDriver: jsonFromDriver,
});

export function counter(name: string) {
  return bigint(name, { mode: 'number' });
}

/**
 * floatVector: `bytea` in the database, a Buffer of little-endian float32 values in TypeScript
 * (SQLite stores the same bytes as a BLOB): knowledge chunk embeddings.
 */
export const floatVector = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => 'bytea',
  toDriver: (value) => value,
  fromDriver: (value) => value,
});
