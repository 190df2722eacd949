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
 * stdout written synchronously from the main thread. pino's default destination is
 * asynchronous: each line goes through a libuv threadpool write and wakes the event loop
 * again when it is done — measured here as four futex calls and a second loop wake-up per
 * request, the largest single cost of a sequential AI call. A synchronous write is one
 * syscall, keeps lines in order with nothing pending at a crash, and the 'ready' line
 * appears at once.
 */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
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
