/**
 * Readiness: named checks, each answering ok / degraded / fail with a short detail.
 * The foundation registers database, migrations and redis; later parts register theirs
 * (licence, providers) through `register`, so /readyz grows without being edited.
 * A `fail` of a check marked `critical` makes the whole answer 503.
 */
export type CheckStatus = 'ok' | 'degraded' | 'fail';

export interface CheckResult {
  readonly status: CheckStatus;
  readonly detail?: string;
  readonly [extra: string]: unknown;
}

export interface ReadinessCheck {
  readonly name: string;
  readonly critical: boolean;
  run(): Promise<CheckResult> | CheckResult;
}

export interface ReadinessReport {
  readonly status: 'ready' | 'not_ready';
  readonly checks: Record<string, CheckResult>;
}

export class Readiness {
  private readonly checks: ReadinessCheck[] = [];
  private draining = false;

  register(check: ReadinessCheck): void {
    if (this.checks.some((c) => c.name === check.name)) throw new Error(`readiness check ${check.name} registered twice`);
    this.checks.push(check);
  }

  /** Called at shutdown so load balancers stop sending new work while requests drain. */
  markDraining(): void {
    this.draining = true;
  }

  async report(timeoutMs = 2000): Promise<ReadinessReport> {
    const entries = await Promise.all(
      this.checks.map(async (c): Promise<[ReadinessCheck, CheckResult]> => [c, await runWithTimeout(c, timeoutMs)]),
    );
    const checks: Record<string, CheckResult> = {};
    let ready = !this.draining;
    for (const [c, r] of entries) {
      checks[c.name] = r;
      if (c.critical && r.status === 'fail') ready = false;
    }
    if (this.draining) checks.shutdown = { status: 'fail', detail: 'shutting down' };
    return { status: ready ? 'ready' : 'not_ready', checks };
  }
}

async function runWithTimeout(check: ReadinessCheck, ms: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(() => check.run()),
      new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => resolve({ status: 'fail', detail: `no answer within ${ms} ms` }), ms);
      }),
    ]);
  } catch (e) {
    return { status: 'fail', detail: (e as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
