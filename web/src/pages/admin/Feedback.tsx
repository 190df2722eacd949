import { useState } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api, type FeedbackSummaryView } from '../../api.js';
import { Thumb } from '../../components/Thumb.js';
import { ErrorNote, formatNumber, formatTime, PageTitle, Spinner } from '../../components/ui.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

/** 👍/👎 on answers per model, with the newest comments ("Was the output reviewed?"). Who rated is not shown. */
export function FeedbackPage() {
  const tenant = useTenantId();
  const [days, setDays] = useState(30);
  const data = useLoad(() => api<FeedbackSummaryView>(tenantPath(tenant, `/feedback?days=${days}&comments=5`)), [tenant, days]);
  const models = data.data?.models ?? [];
  return (
    <section className="page">
      <PageTitle>Answer feedback</PageTitle>
      <p className="muted">What people in this organisation said about answers, per model. Ratings are anonymous here.</p>
      <label className="inline-field">
        <span>Period</span>
        <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
          <option value={7}>Last 7 days</option>
          <option value={30}>Last 30 days</option>
          <option value={90}>Last 90 days</option>
          <option value={365}>Last year</option>
        </select>
      </label>
      <ErrorNote error={data.error} title="Could not load feedback." />
      {data.loading && !data.data ? <Spinner /> : null}
      {data.data ? (
        <DataTable
          caption="Feedback per model"
          rows={models}
          rowKey={(m) => m.model}
          empty="No feedback in this period. People rate answers as helpful or not helpful under each answer in chat."
          initialSort={{ key: 'model' }}
          columns={[
            { key: 'model', header: 'Model', cell: (m) => m.model, sort: (m) => m.model },
            { key: 'up', header: 'Helpful', cell: (m) => formatNumber(m.up), sort: (m) => m.up, num: true },
            { key: 'down', header: 'Not helpful', cell: (m) => formatNumber(m.down), sort: (m) => m.down, num: true },
            { key: 'share', header: 'Helpful share', cell: (m) => (m.up + m.down ? `${Math.round((100 * m.up) / (m.up + m.down))} %` : '—'), sort: (m) => (m.up + m.down ? m.up / (m.up + m.down) : null), num: true },
          ]}
        />
      ) : null}
      {models
        .filter((m) => m.recent_comments.length)
        .map((m) => (
          <section key={m.model} className="card" aria-label={`Recent comments on ${m.model}`}>
            <h2 className="card-title">Recent comments on {m.model}</h2>
            <ul className="feedback-comments">
              {m.recent_comments.map((c, i) => (
                <li key={i}>
                  <span className={`tag ${c.rating === 'up' ? 'tag-active' : 'tag-error'}`}>
                    <Thumb down={c.rating === 'down'} size={14} /> {c.rating === 'up' ? 'Helpful' : 'Not helpful'}
                  </span>{' '}
                  {c.comment} <span className="muted small">· {formatTime(c.updated_at)}</span>
                </li>
              ))}
            </ul>
          </section>
        ))}
    </section>
  );
}
