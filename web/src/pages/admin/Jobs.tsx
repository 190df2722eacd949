import { api } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
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
          <DataTable
            caption="Failed jobs, newest first"
            rows={d.failed}
            rowKey={(j) => `${j.queue}:${j.id}`}
            search={(j) => `${j.name} ${j.id} ${j.queue} ${j.tenant_id ?? ''} ${j.failed_reason ?? ''}`}
            empty="No failed jobs."
            columns={[
              {
                key: 'job',
                header: 'Job',
                sort: (j) => j.name,
                cell: (j) => (
                  <>
                    {j.name}
                    <div className="small muted">#{j.id}</div>
                  </>
                ),
              },
              { key: 'lane', header: 'Lane', cell: (j) => LANE_LABEL[j.queue] ?? j.queue, sort: (j) => j.queue },
              { key: 'tenant', header: 'Tenant', cell: (j) => j.tenant_id ?? '—', className: 'small' },
              { key: 'attempts', header: 'Attempts', cell: (j) => j.attempts_made, sort: (j) => j.attempts_made },
              { key: 'failed', header: 'Failed', cell: (j) => formatTime(j.failed_at), sort: (j) => j.failed_at },
              { key: 'reason', header: 'Reason', cell: (j) => j.failed_reason, className: 'small reason' },
            ]}
            actions={(j) => {
              const label = `${j.name} #${j.id}`;
              const busy = act.busy?.endsWith(`:${j.queue}:${j.id}`);
              return (
                <span className="button-row nowrap">
                  <button type="button" className="btn btn-small" disabled={!!act.busy} onClick={() => void op(j, 'retry')} aria-label={`Retry ${label}`}>
                    {busy && act.busy?.startsWith('retry') ? <Spinner label="Retrying…" /> : 'Retry'}
                  </button>
                  <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void op(j, 'discard')} aria-label={`Discard ${label}`}>
                    {busy && act.busy?.startsWith('discard') ? <Spinner label="Discarding…" /> : 'Discard'}
                  </button>
                </span>
              );
            }}
          />
        </>
      ) : null}
    </section>
  );
}
