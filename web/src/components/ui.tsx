import { useEffect, useRef, type ReactNode } from 'react';
import { ApiError, type Boundary } from '../api.js';

const BOUNDARY_LABEL: Record<Boundary, string> = { local: 'Local', private: 'Private cloud', public: 'Public cloud' };

export function boundaryLabel(b: string): string {
  return BOUNDARY_LABEL[b as Boundary] ?? b;
}

export function BoundaryBadge({ boundary }: { boundary: string }) {
  return (
    <span className={`badge badge-${boundary}`} title={`Data boundary: ${boundaryLabel(boundary)}`}>
      {boundaryLabel(boundary)}
    </span>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <span className="spinner" role="status">
      <span className="spinner-dot" aria-hidden="true" />
      <span>{label}</span>
    </span>
  );
}

/** An error from the API envelope, with its code for support. */
export function ErrorNote({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  const message = e ? e.message : error instanceof Error ? error.message : String(error);
  return (
    <div className="note note-error" role="alert">
      {title ? <strong>{title} </strong> : null}
      {message}
      {e ? <span className="code"> ({e.code})</span> : null}
    </div>
  );
}

export function Note({ kind = 'info', children }: { kind?: 'info' | 'warn' | 'ok'; children: ReactNode }) {
  return (
    <div className={`note note-${kind}`} role={kind === 'warn' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

/** Moves focus to the page heading when a page opens (screen readers hear where they are). */
export function PageTitle({ children }: { children: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  useEffect(() => {
    if (typeof children === 'string') document.title = `${children} · Enclave`;
  }, [children]);
  return (
    <h1 ref={ref} tabIndex={-1} className="page-title">
      {children}
    </h1>
  );
}

export function formatTime(ms: number | null | undefined): string {
  if (!ms) return '—';
  return new Date(ms).toLocaleString();
}

export function formatNumber(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : n.toLocaleString();
}

export function formatCost(micros: number | null | undefined): string {
  if (micros === null || micros === undefined) return '—';
  return `$${(micros / 1_000_000).toFixed(micros > 0 && micros < 10_000 ? 4 : 2)}`;
}
