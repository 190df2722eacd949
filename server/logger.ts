import pino, { type Logger } from 'pino';

/**
 * pino JSON logs. Redaction is a second line of defence: request logs never include
 * bodies or headers in the first place, but a secret passed to a log call by mistake
 * under one of these keys is still masked.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'masterKey',
  '*.masterKey',
];

/**
 * stdout through pino's asynchronous destination: lines written while a write is in flight
 * leave together (one syscall per batch under load instead of one per request line), none
 * waits for a buffer to fill (minLength 0), and pino flushes what is pending on exit.
 */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: false, minLength: 0 })): Logger {
  return pino(
    {
      level,
      base: { service: 'enclave', pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
