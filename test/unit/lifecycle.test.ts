import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { closeInReverse } from '../../server/lifecycle.js';

describe('closeInReverse', () => {
  it('runs every step in reverse order even when one fails, and logs the failure', async () => {
    const ran: string[] = [];
    const lines: string[] = [];
    const log = pino({ level: 'error' }, { write: (l: string) => void lines.push(l) });
    await closeInReverse(
      [
        () => void ran.push('database'),
        async () => {
          ran.push('redis-server');
        },
        () => {
          ran.push('queues');
          throw new Error('queue close failed');
        },
        () => void ran.push('http'),
      ],
      log,
    );
    expect(ran).toEqual(['http', 'queues', 'redis-server', 'database']);
    expect(lines.join('')).toContain('queue close failed');
  });
});
