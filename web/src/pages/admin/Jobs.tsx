import { api } from '../../api.js';
import { ErrorNote, formatNumber, formatTime, PageTitle, Spinner } from '../../components/ui.js';
import { useAction, useLoad, ActionStatus } from './common.js';

interface FailedJob {
  queue: string;
  id: string;
  name: string;
  tenant_id: string | null;
  failed_reason: string;
  attempts_made: number;
  created_at: number;
  failed_at: number | null;
}
type Counts = Record<string, Record<string, number>>;

const STATES = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'];
const LANE_LABEL: Record<string, string> = { ai: 'AI (batches)', ingest: 'Ingest', maintenance: 'Maintenance' };

/** Background jobs (platform administrators): counts per lane and failed jobs to retry or discard. */
export function JobsPage() {
  const data = useLoad(async () => {
    const [counts, failed] = await Promise.all([api<{ queues: Counts }>('/admin/api/jobs/counts'), api<{ data: FailedJob[] }>('/admin/api/jobs/failed?limit=100')]);
    return { counts: counts.queues, failed: failed.data };
  }, []);
  const act = useAction();
  const d = data.data;

  const op = async (j: FailedJob, kind: 'retry' | 'discard') => {
    if (kind === 'discard' && !confirm(`Discard the failed job ${j.name} (${j.queue} #${j.id}) for good?`)) return;
    await act.run(`${kind}:${j.queue}:${j.id}`, async () => {
      await api(`/admin/api/jobs/${encodeURIComponent(j.queue)}/${encodeURIComponent(j.id)}/${kind}`, { body: {} });
      await data.reload();
      return kind === 'retry' ? `Job ${j.name} (#${j.id}) is queued again.` : `Job ${j.name} (#${j.id}) was discarded.`;
    });
  };

  return (
    <section className="page">
      <PageTitle>Jobs</PageTitle>
      <div className="button-row">
        <button type="button" className="btn" onClick={() => void data.reload()} disabled={data.loading}>
          {data.loading ? <Spinner label="Refreshing…" /> : 'Refresh'}
        </button>
      </div>
      <ErrorNote error={data.error} title="Could not load the job queues." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="table-wrap" tabIndex={0}>
            <table className="table">
              <caption>Jobs per lane</caption>
              <thead>
                <tr>
                  <th scope="col">Lane</th>
                  {STATES.map((s) => (
                    <th scope="col" key={s}>
                      {s}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {Object.entries(d.counts).map(([lane, c]) => (
                  <tr key={lane}>
                    <th scope="row">{LANE_LABEL[lane] ?? lane}</th>
                    {STATES.map((s) => (
                      <td key={s} className={s === 'failed' && (c[s] ?? 0) > 0 ? 'bad' : undefined}>
                        {formatNumber(c[s] ?? 0)}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h2>Failed jobs</h2>
          <ActionStatus act={act} />
          {d.failed.length === 0 ? (
            <p className="muted">No failed jobs.</p>
          ) : (
            <div className="table-wrap" tabIndex={0}>
              <table className="table">
                <caption className="sr-only">Failed jobs, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Job</th>
                    <th scope="col">Lane</th>
                    <th scope="col">Tenant</th>
                    <th scope="col">Attempts</th>
                    <th scope="col">Failed</th>
                    <th scope="col">Reason</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {d.failed.map((j) => {
                    const label = `${j.name} #${j.id}`;
                    const busy = act.busy?.endsWith(`:${j.queue}:${j.id}`);
                    return (
                      <tr key={`${j.queue}:${j.id}`}>
                        <td>
                          {j.name}
                          <div className="small muted">#{j.id}</div>
                        </td>
                        <td>{LANE_LABEL[j.queue] ?? j.queue}</td>
                        <td className="small">{j.tenant_id ?? '—'}</td>
                        <td>{j.attempts_made}</td>
                        <td>{formatTime(j.failed_at)}</td>
                        <td className="small reason">{j.failed_reason}</td>
                        <td>
                          <span className="button-row nowrap">
                            <button type="button" className="btn btn-small" disabled={!!act.busy} onClick={() => void op(j, 'retry')} aria-label={`Retry ${label}`}>
                              {busy && act.busy?.startsWith('retry') ? <Spinner label="Retrying…" /> : 'Retry'}
                            </button>
                            <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void op(j, 'discard')} aria-label={`Discard ${label}`}>
                              {busy && act.busy?.startsWith('discard') ? <Spinner label="Discarding…" /> : 'Discard'}
                            </button>
                          </span>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </>
      ) : null}
    </section>
  );
}
